"""DataSet write path: constructors, add/modify results, parameters, completion, ids,
and validation that rejects bad calls completely while keeping what was stored."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import plain, snapshot, stored

from qdataset import (
    CompletedError,
    DataSet,
    DuplicateParameterError,
    IndexRangeError,
    InvalidParamSpecError,
    LengthMismatchError,
    MissingValueError,
    ParamSpec,
    QDatasetError,
    ShapeError,
    UnknownParameterError,
    ValueTypeError,
)

# -- construction --------------------------------------------------------------------


def test_constructor_without_parameters(store):
    ds = DataSet("empty", store=store)
    assert ds.get_parameters() == []
    assert ds.length == 0 and ds.is_empty and not ds.is_marked_complete
    assert [r.id for r in store.runs()] == [ds.id]


def test_constructor_with_specs(store, xy_specs):
    ds = DataSet("sweep", xy_specs, store=store)
    assert ds.get_parameters() == xy_specs
    assert ds.is_empty


def test_constructor_with_values_mixing_lists_and_arrays(store, xy_specs):
    xs = [0.0, 0.5, 1.0]
    ys = np.array([2.0, 2.5, 3.0])
    ds = DataSet("sweep", xy_specs, [xs, ys], store=store)
    assert ds.length == 3 and not ds.is_empty
    got_x, got_y = ds.get_data("x", "y")
    assert got_x.tolist() == xs and got_y.tolist() == ys.tolist()
    assert stored(store, ds.id) == snapshot(ds)


@pytest.mark.parametrize("values", [
    [[1.0, 2.0], [1.0]],                # unequal lengths
    [[1.0, 2.0]],                        # one array for two specs
    [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]],  # three arrays for two specs
])
def test_constructor_values_length_errors_create_nothing(store, xy_specs, values):
    with pytest.raises(LengthMismatchError):
        DataSet("bad", xy_specs, values, store=store)
    assert store.runs() == []


def test_constructor_bad_value_creates_nothing(store, xy_specs):
    with pytest.raises(ValueTypeError):
        DataSet("bad", xy_specs, [[1.0, 2.0], [1.0, "two"]], store=store)
    assert store.runs() == []


def test_constructor_duplicate_names_case_insensitive(store):
    with pytest.raises(DuplicateParameterError, match="'X'"):
        DataSet("dup", [ParamSpec("x", np.float64), ParamSpec("X", np.int64)], store=store)
    assert store.runs() == []


def test_constructor_depends_on_unknown(store):
    with pytest.raises(InvalidParamSpecError, match="q"):
        DataSet("dep", [ParamSpec("y", np.float64, depends_on=["q"])], store=store)
    assert store.runs() == []


def test_constructor_rejects_non_paramspec(store):
    with pytest.raises(InvalidParamSpecError):
        DataSet("bad", ["x"], store=store)


# -- add_result(s) -------------------------------------------------------------------------


def test_add_result_kwargs_and_dict_return_index(store, xy_specs):
    ds = DataSet("r", xy_specs, store=store)
    assert ds.add_result(x=0.1, y=2.0) == 0
    assert ds.add_result({"x": 0.2, "y": 2.1}) == 1
    assert ds.add_result(x=np.float64(0.3), y=np.int64(4)) == 2
    assert ds.length == 3
    xs, ys = ds.get_data("x", "y")
    assert xs.tolist() == [0.1, 0.2, 0.3]
    assert ys.tolist() == [2.0, 2.1, 4.0]


def test_add_result_rejects_dict_plus_kwargs(store, xy_specs):
    ds = DataSet("r", xy_specs, store=store)
    with pytest.raises(ValueTypeError):
        ds.add_result({"x": 1.0}, y=2.0)
    assert ds.length == 0


def test_add_results_keeps_order_and_returns_first_index(store, xy_specs):
    ds = DataSet("r", xy_specs, store=store)
    ds.add_result(x=-1.0, y=-1.0)
    rows = [{"x": float(i), "y": float(10 * i)} for i in range(50)]
    assert ds.add_results(rows) == 1
    assert ds.add_results([]) == 51
    xs, ys = ds.get_data("x", "y")
    assert xs.tolist() == [-1.0] + [r["x"] for r in rows]
    assert ys.tolist() == [-1.0] + [r["y"] for r in rows]


def test_add_results_columnar(store, xy_specs):
    ds = DataSet("r", xy_specs, store=store)
    ds.add_result(x=-1.0, y=-2.0)
    xs = np.linspace(0, 1, 1000)
    ys = xs**2
    assert ds.add_results({"x": xs, "y": ys}) == 1
    assert ds.add_results({"x": [5.0, 6.0], "y": [7.0, 8.0]}) == 1001
    assert ds.add_result(x=9.0, y=9.5) == 1003
    got_x, got_y = ds.get_data("x", "y")
    np.testing.assert_array_equal(got_x, np.concatenate([[-1.0], xs, [5.0, 6.0, 9.0]]))
    np.testing.assert_array_equal(got_y, np.concatenate([[-2.0], ys, [7.0, 8.0, 9.5]]))
    assert stored(store, ds.id) == snapshot(ds)


def test_add_results_columnar_unequal_lengths(store, xy_specs):
    ds = DataSet("r", xy_specs, [[1.0], [2.0]], store=store)
    before = snapshot(ds)
    with pytest.raises(LengthMismatchError):
        ds.add_results({"x": [1.0, 2.0], "y": [1.0]})
    assert snapshot(ds) == before == stored(store, ds.id)


def test_optional_parameter_may_be_left_out(store):
    specs = [ParamSpec("x", np.float64), ParamSpec("n", np.int64, optional=True),
             ParamSpec("f", np.float64, optional=True)]
    ds = DataSet("opt", specs, store=store)
    ds.add_result(x=1.0)
    ds.add_result(x=2.0, n=5, f=0.5)
    ds.add_results({"x": [3.0]})
    xs, ns, fs = ds.get_data("x", "n", "f")
    assert xs.tolist() == [1.0, 2.0, 3.0]
    assert isinstance(ns, np.ma.MaskedArray)
    assert ns.mask.tolist() == [True, False, True] and ns[1] == 5
    assert np.isnan(fs[0]) and fs[1] == 0.5 and np.isnan(fs[2])


# -- modify_result(s) ----------------------------------------------------------------------


def _mod_ds(store):
    specs = [ParamSpec("x", np.float64), ParamSpec("n", np.int64),
             ParamSpec("s", str), ParamSpec("t", np.float64, shape=(2,))]
    ds = DataSet("mod", specs, store=store)
    for i in range(4):
        ds.add_result(x=float(i), n=i, s=f"s{i}", t=[i, -i])
    return ds


def test_modify_result_kwargs_and_dict(store):
    ds = _mod_ds(store)
    ds.modify_result(1, x=10.0)
    ds.modify_result(2, {"n": 20, "s": "twenty", "t": np.array([2.5, 3.5])})
    xs, ns, ss, ts = ds.get_data("x", "n", "s", "t")
    assert xs.tolist() == [0.0, 10.0, 2.0, 3.0]
    assert ns.tolist() == [0, 1, 20, 3]
    assert ss.tolist() == ["s0", "s1", "twenty", "s3"]
    assert ts.tolist() == [[0, 0], [1, -1], [2.5, 3.5], [3, -3]]
    assert stored(store, ds.id) == snapshot(ds)


def test_modify_result_none_removes(store):
    ds = _mod_ds(store)
    ds.modify_result(1, x=None, n=None, s=None, t=None)
    xs, ns, ss, ts = ds.get_data("x", "n", "s", "t")
    assert np.isnan(xs[1]) and xs[[0, 2, 3]].tolist() == [0.0, 2.0, 3.0]
    assert isinstance(ns, np.ma.MaskedArray) and ns.mask.tolist() == [False, True, False, False]
    assert ns.compressed().tolist() == [0, 2, 3]
    assert isinstance(ss, np.ma.MaskedArray) and ss.mask.tolist() == [False, True, False, False]
    assert ss.dtype.kind == "U"
    assert np.isnan(ts[1]).all() and ts[2].tolist() == [2.0, -2.0]


def test_modify_results_sequence(store):
    ds = _mod_ds(store)
    ds.modify_results(1, [{"x": 11.0}, {"n": 22}, {"s": "thirty-three"}])
    xs, ns, ss = ds.get_data("x", "n", "s")
    assert xs.tolist() == [0.0, 11.0, 2.0, 3.0]
    assert ns.tolist() == [0, 1, 22, 3]
    assert ss.tolist() == ["s0", "s1", "s2", "thirty-three"]


def test_modify_sees_unflushed_rows(store_url, xy_specs):
    import qdataset

    with qdataset.connect(store_url, flush_interval=60) as slow:
        ds = DataSet("m", xy_specs, store=slow)
        ds.add_result(x=1.0, y=1.0)
        ds.modify_result(0, y=5.0)
        assert ds.get_data("y")[0].tolist() == [5.0]


@pytest.mark.parametrize("index, count", [(-1, 1), (4, 1), (100, 1), (3, 2), (0, 5)])
def test_modify_out_of_range(store, index, count):
    ds = _mod_ds(store)
    before = snapshot(ds)
    with pytest.raises(IndexRangeError):
        ds.modify_results(index, [{"x": 99.0}] * count)
    if count == 1:
        with pytest.raises(IndexRangeError):
            ds.modify_result(index, x=99.0)
    assert snapshot(ds) == before == stored(store, ds.id)


def test_modify_bad_value_in_sequence_changes_nothing(store):
    ds = _mod_ds(store)
    before = snapshot(ds)
    with pytest.raises(ValueTypeError):
        ds.modify_results(0, [{"x": 5.0}, {"n": 1.5}, {"x": 7.0}])
    with pytest.raises(UnknownParameterError):
        ds.modify_results(0, [{"x": 5.0}, {"nope": 1}])
    with pytest.raises(ShapeError):
        ds.modify_result(0, t=[1.0, 2.0, 3.0])
    assert snapshot(ds) == before == stored(store, ds.id)


def test_modify_index_must_be_int(store):
    ds = _mod_ds(store)
    with pytest.raises(ValueTypeError):
        ds.modify_result(1.0, x=2.0)
    with pytest.raises(ValueTypeError):
        ds.modify_result(True, x=2.0)


# -- parameters on an in-progress run ---------------------------------------------------------


def test_add_parameter_existing_rows_get_nulls(store, xy_specs):
    ds = DataSet("p", xy_specs, store=store)
    ds.add_results([{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}])
    ds.add_parameter(ParamSpec("f", np.float64))
    ds.add_parameters([ParamSpec("n", np.int64), ParamSpec("b", bool), ParamSpec("s", str),
                       ParamSpec("z", np.complex128), ParamSpec("t", np.float64, shape=(3,)),
                       ParamSpec("k", np.int16, shape=(2,))])
    assert [s.name for s in ds.get_parameters()] == ["x", "y", "f", "n", "b", "s", "z", "t", "k"]
    ds.add_result(x=5.0, y=6.0, f=0.5, n=7, b=True, s="hi", z=1 + 2j, t=[1, 2, 3], k=[4, 5])
    assert ds.length == 3
    xs, fs, ns, bs, ss, zs, ts, ks = ds.get_data("x", "f", "n", "b", "s", "z", "t", "k")
    assert xs.tolist() == [1.0, 3.0, 5.0]
    assert np.isnan(fs[:2]).all() and fs[2] == 0.5
    for masked, last in [(ns, 7), (bs, True), (ss, "hi")]:
        assert isinstance(masked, np.ma.MaskedArray)
        assert masked.mask.tolist() == [True, True, False]
        assert masked[2] == last
    assert ns.dtype == np.int64 and bs.dtype == np.bool_ and ss.dtype.kind == "U"
    assert zs.dtype == np.complex128
    assert np.isnan(zs[:2].real).all() and zs[2] == 1 + 2j
    assert ts.shape == (3, 3) and np.isnan(ts[:2]).all() and ts[2].tolist() == [1, 2, 3]
    assert isinstance(ks, np.ma.MaskedArray) and ks.dtype == np.int16
    assert ks.mask.tolist() == [[True, True], [True, True], [False, False]]
    assert ks[2].tolist() == [4, 5]
    assert stored(store, ds.id) == snapshot(ds)


def test_add_parameter_sees_buffered_rows(store_url, xy_specs):
    import qdataset

    with qdataset.connect(store_url, flush_interval=60) as slow:
        ds = DataSet("p", xy_specs, store=slow)
        ds.add_result(x=1.0, y=2.0)
        ds.add_parameter(ParamSpec("n", np.int64, optional=True))
        ds.add_result(x=2.0, y=3.0, n=4)
        xs, ns = ds.get_data("x", "n")
        assert xs.tolist() == [1.0, 2.0]
        assert ns.mask.tolist() == [True, False] and ns[1] == 4


def test_add_parameter_duplicate_and_unknown_dependency(store, xy_specs):
    ds = DataSet("p", xy_specs, [[1.0], [2.0]], store=store)
    before = snapshot(ds)
    with pytest.raises(DuplicateParameterError):
        ds.add_parameter(ParamSpec("Y", np.float64))
    with pytest.raises(DuplicateParameterError):
        ds.add_parameters([ParamSpec("a", np.float64), ParamSpec("A", np.float64)])
    with pytest.raises(InvalidParamSpecError):
        ds.add_parameter(ParamSpec("w", np.float64, depends_on=["nowhere"]))
    with pytest.raises(InvalidParamSpecError):
        ds.add_parameter("w")
    assert ds.get_parameters() == xy_specs
    assert snapshot(ds) == before == stored(store, ds.id)
    assert store.read_dataset(ds.id).get_parameters() == xy_specs


def test_add_parameter_depending_on_existing(store, xy_specs):
    ds = DataSet("p", xy_specs, store=store)
    ds.add_parameter(ParamSpec("w", np.float64, depends_on=["x"], optional=True))
    assert ds.get_parameters()[-1].depends_on == ("x",)


def test_add_parameter_values(store, xy_specs):
    ds = DataSet("pv", xy_specs, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], store=store)
    ds.add_parameter_values(ParamSpec("w", np.int64), [7, 8, 9])
    ds.add_parameter_values(ParamSpec("s", str), np.array(["a", "b", "c"]))
    assert ds.length == 3
    ws, ss = ds.get_data("w", "s")
    assert ws.tolist() == [7, 8, 9] and ws.dtype == np.int64
    assert ss.tolist() == ["a", "b", "c"]
    assert stored(store, ds.id) == snapshot(ds)


@pytest.mark.parametrize("values", [[1, 2], [1, 2, 3, 4], []])
def test_add_parameter_values_length_check(store, xy_specs, values):
    ds = DataSet("pv", xy_specs, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], store=store)
    before = snapshot(ds)
    with pytest.raises(LengthMismatchError):
        ds.add_parameter_values(ParamSpec("w", np.int64), values)
    assert [s.name for s in ds.get_parameters()] == ["x", "y"]
    assert snapshot(ds) == before == stored(store, ds.id)


def test_add_parameter_values_bad_value_adds_nothing(store, xy_specs):
    ds = DataSet("pv", xy_specs, [[1.0, 2.0], [4.0, 5.0]], store=store)
    with pytest.raises(ValueTypeError):
        ds.add_parameter_values(ParamSpec("w", np.int64), [1, "2"])
    assert [s.name for s in ds.get_parameters()] == ["x", "y"]


def test_add_parameter_values_on_empty_dataset_sets_length(store):
    ds = DataSet("pv", store=store)
    ds.add_parameter_values(ParamSpec("x", np.float64, role="setpoint"), np.arange(5.0))
    assert ds.length == 5
    ds.add_parameter_values(ParamSpec("y", np.float64), [1.0, 2.0, 3.0, 4.0, 5.0])
    xs, ys = ds.get_data("x", "y")
    assert xs.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and ys.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert store.read_dataset(ds.id).length == 5


# -- completion -----------------------------------------------------------------------------------


def test_mark_completed_refuses_every_write(store, xy_specs):
    ds = DataSet("done", xy_specs, [[1.0, 2.0], [3.0, 4.0]], store=store)
    ds.add_result(x=5.0, y=6.0)  # buffered: mark_completed must flush it
    ds.mark_completed()
    assert ds.is_marked_complete
    before = snapshot(ds)
    assert before[0] == 3
    attempts = [
        lambda: ds.add_result(x=1.0, y=1.0),
        lambda: ds.add_result({"x": 1.0, "y": 1.0}),
        lambda: ds.add_results([{"x": 1.0, "y": 1.0}]),
        lambda: ds.add_results({"x": [1.0], "y": [1.0]}),
        lambda: ds.modify_result(0, x=9.0),
        lambda: ds.modify_result(0, x=None),
        lambda: ds.modify_results(0, [{"x": 9.0}]),
        lambda: ds.add_parameter(ParamSpec("w", np.float64)),
        lambda: ds.add_parameters([ParamSpec("w", np.float64)]),
        lambda: ds.add_parameter_values(ParamSpec("w", np.float64), [1.0, 2.0, 3.0]),
    ]
    for attempt in attempts:
        with pytest.raises(CompletedError, match=ds.id):
            attempt()
    assert snapshot(ds) == before == stored(store, ds.id)
    ds.mark_completed()  # idempotent
    assert store.runs()[0].completed


def test_context_manager_completes(store, xy_specs):
    with DataSet("ctx", xy_specs, store=store) as ds:
        ds.add_result(x=1.0, y=2.0)
        assert not ds.is_marked_complete
    assert ds.is_marked_complete
    view = store.read_dataset(ds.id)
    assert view.is_marked_complete and view.length == 1
    with pytest.raises(CompletedError):
        ds.add_result(x=1.0, y=2.0)


# -- ids -----------------------------------------------------------------------------------------


def test_id_contains_utc_datetime_and_name(store):
    before = time.time()
    ds = DataSet("my_sweep", store=store)
    after = time.time()
    stamps = {time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) for t in (before, after)}
    assert any(stamp in ds.id for stamp in stamps)
    assert "my_sweep" in ds.id
    assert ds.get_metadata("id") == ds.id
    created = store.runs()[0].created.timestamp()
    assert time.strftime("%Y%m%d-%H%M%S", time.gmtime(created)) in ds.id


def test_ids_unique_within_one_second(store):
    ids = [DataSet("same", store=store).id for _ in range(60)]
    assert len(set(ids)) == len(ids)
    assert {r.id for r in store.runs(name="same")} == set(ids)


# -- bad values ----------------------------------------------------------------------------------

OBJECT_ARRAY = np.array([1.0, "a", None], dtype=object)

BAD_VALUES = [
    # (spec, good value, bad value, error)
    (ParamSpec("p", np.float64), 1.5, "1.0", ValueTypeError),
    (ParamSpec("p", np.float64), 1.5, True, ValueTypeError),
    (ParamSpec("p", np.float64), 1.5, np.bool_(False), ValueTypeError),
    (ParamSpec("p", np.float64), 1.5, 1 + 2j, ValueTypeError),
    (ParamSpec("p", np.float64), 1.5, [1.0], ValueTypeError),
    (ParamSpec("p", np.float64), 1.5, OBJECT_ARRAY, ValueTypeError),
    (ParamSpec("p", np.int64), 3, 1.5, ValueTypeError),
    (ParamSpec("p", np.int64), 3, 2.0, ValueTypeError),
    (ParamSpec("p", np.int64), 3, np.float64(2.0), ValueTypeError),
    (ParamSpec("p", np.int64), 3, "3", ValueTypeError),
    (ParamSpec("p", np.int64), 3, True, ValueTypeError),
    (ParamSpec("p", np.int8), 3, 128, ValueTypeError),
    (ParamSpec("p", np.int8), 3, -129, ValueTypeError),
    (ParamSpec("p", np.uint8), 3, -1, ValueTypeError),
    (ParamSpec("p", np.uint8), 3, 256, ValueTypeError),
    (ParamSpec("p", bool), True, 1, ValueTypeError),
    (ParamSpec("p", bool), True, "True", ValueTypeError),
    (ParamSpec("p", str), "ok", 5, ValueTypeError),
    (ParamSpec("p", str), "ok", b"bytes", ValueTypeError),
    (ParamSpec("p", np.complex128), 1j, "1j", ValueTypeError),
    (ParamSpec("p", np.complex128), 1j, np.zeros(2), ShapeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], np.zeros(4), ShapeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], np.zeros((3, 1)), ShapeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], 1.0, ShapeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], OBJECT_ARRAY, ValueTypeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], ["a", "b", "c"], ValueTypeError),
    (ParamSpec("p", np.float64, shape=(3,)), [1.0, 2.0, 3.0], [1 + 1j, 0, 0], ValueTypeError),
    (ParamSpec("p", np.int64, shape=(3,)), [1, 2, 3], [1.5, 2.0, 3.0], ValueTypeError),
    (ParamSpec("p", np.float64, shape=(2, 2)), np.eye(2), np.zeros(4), ShapeError),
    (ParamSpec("p", np.float64, shape=(None,)), [1.0], np.zeros((2, 2)), ShapeError),
    (ParamSpec("p", np.float64, shape=(None,)), [1.0], "abc", ValueTypeError),
]


def _ids(case):
    spec, _good, bad, error = case
    return f"{spec.type}{list(spec.shape)}-{type(bad).__name__}-{error.__name__}"


@pytest.fixture(params=BAD_VALUES, ids=[_ids(c) for c in BAD_VALUES])
def bad_case(request, store):
    spec, good, bad, error = request.param
    ds = DataSet("bad", [ParamSpec("x", np.float64), spec], store=store)
    ds.add_result(x=0.0, p=good)
    ds.add_results([{"x": 1.0, "p": good}, {"x": 2.0, "p": good}])
    return ds, good, bad, error


def test_bad_value_add_result(bad_case, store):
    ds, good, bad, error = bad_case
    before = snapshot(ds)
    with pytest.raises(error, match="'p'") as info:
        ds.add_result(x=9.0, p=bad)
    assert isinstance(info.value, QDatasetError)
    with pytest.raises(error):
        ds.add_result({"x": 9.0, "p": bad})
    assert snapshot(ds) == before == stored(store, ds.id)
    assert ds.add_result(x=3.0, p=good) == before[0]


def test_bad_value_in_middle_of_add_results(bad_case, store):
    ds, good, bad, error = bad_case
    before = snapshot(ds)
    rows = [{"x": 5.0, "p": good}, {"x": 6.0, "p": bad}, {"x": 7.0, "p": good}]
    with pytest.raises(error):
        ds.add_results(rows)
    assert snapshot(ds) == before == stored(store, ds.id)
    # the DataSet still works and indices continue without a gap
    assert ds.add_result(x=8.0, p=good) == before[0]


def test_bad_value_in_middle_of_columnar_add_results(bad_case, store):
    ds, good, bad, error = bad_case
    before = snapshot(ds)
    with pytest.raises(QDatasetError):
        ds.add_results({"x": [5.0, 6.0, 7.0], "p": [good, bad, good]})
    assert snapshot(ds) == before == stored(store, ds.id)


def test_bad_value_modify_result(bad_case, store):
    ds, _good, bad, error = bad_case
    before = snapshot(ds)
    with pytest.raises(error):
        ds.modify_result(1, p=bad)
    with pytest.raises(error):
        ds.modify_results(0, [{"x": 100.0}, {"p": bad}])
    assert snapshot(ds) == before == stored(store, ds.id)


@pytest.mark.parametrize("column, error", [
    ([1.0, True, 2.0], ValueTypeError),           # bool for float hidden in a list
    (np.array([True, False, True]), ValueTypeError),
    ([1.0, "2", 3.0], ValueTypeError),
    (np.array([1, 2, 3], dtype=object), ValueTypeError),
    (np.array([1 + 1j, 2, 3]), ValueTypeError),
    (np.zeros((3, 2)), ShapeError),
    (5.0, ValueTypeError),
])
def test_bad_float_column(store, column, error):
    ds = DataSet("col", [ParamSpec("x", np.float64), ParamSpec("n", np.int64)], store=store)
    ds.add_results({"x": [0.5], "n": [1]})
    before = snapshot(ds)
    with pytest.raises(error):
        ds.add_results({"n": [1, 2, 3], "x": column})
    assert snapshot(ds) == before == stored(store, ds.id)


@pytest.mark.parametrize("column", [
    [1, True, 3], [1, 2.5, 3], np.array([1.0, 2.0, 3.0]), np.array([1, 2, 200]),
])
def test_bad_int8_column(store, column):
    ds = DataSet("col", [ParamSpec("n", np.int8)], store=store)
    with pytest.raises(ValueTypeError):
        ds.add_results({"n": column})
    assert ds.length == 0 and stored(store, ds.id)[0] == 0


def test_bad_str_column(store):
    ds = DataSet("col", [ParamSpec("s", str)], store=store)
    with pytest.raises(ValueTypeError):
        ds.add_results({"s": ["a", 5, "c"]})
    with pytest.raises(ValueTypeError):
        ds.add_results({"s": np.arange(3)})
    assert ds.length == 0


def test_unknown_parameter(store, xy_specs):
    ds = DataSet("u", xy_specs, [[1.0], [2.0]], store=store)
    before = snapshot(ds)
    with pytest.raises(UnknownParameterError, match="'z'"):
        ds.add_result(x=1.0, y=2.0, z=3.0)
    with pytest.raises(UnknownParameterError):
        ds.add_results([{"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0, "z": 3.0}])
    with pytest.raises(UnknownParameterError):
        ds.add_results({"x": [1.0], "y": [2.0], "z": [3.0]})
    with pytest.raises(UnknownParameterError):
        ds.modify_result(0, z=1.0)
    with pytest.raises(UnknownParameterError):
        ds.modify_result(0, X=1.0)  # names are matched exactly
    assert snapshot(ds) == before == stored(store, ds.id)


def test_missing_non_optional(store, xy_specs):
    ds = DataSet("m", xy_specs, [[1.0], [2.0]], store=store)
    before = snapshot(ds)
    with pytest.raises(MissingValueError, match="'y'"):
        ds.add_result(x=1.0)
    with pytest.raises(MissingValueError):
        ds.add_result(x=1.0, y=None)
    with pytest.raises(MissingValueError):
        ds.add_results([{"x": 1.0, "y": 2.0}, {"x": 1.0}, {"x": 1.0, "y": 2.0}])
    with pytest.raises(MissingValueError):
        ds.add_results({"x": [1.0, 2.0]})
    with pytest.raises(MissingValueError):
        ds.add_results({"x": [1.0, 2.0], "y": [3.0, None]})
    assert snapshot(ds) == before == stored(store, ds.id)


def test_add_results_rejects_non_dict_items(store, xy_specs):
    ds = DataSet("m", xy_specs, store=store)
    with pytest.raises(ValueTypeError):
        ds.add_results([{"x": 1.0, "y": 2.0}, (1.0, 2.0)])
    assert ds.length == 0


def test_errors_are_qdataset_errors_and_builtin_kinds():
    assert issubclass(UnknownParameterError, LookupError)
    assert issubclass(ValueTypeError, TypeError)
    assert issubclass(IndexRangeError, IndexError)
    for cls in (CompletedError, ShapeError, LengthMismatchError, MissingValueError,
                DuplicateParameterError):
        assert issubclass(cls, QDatasetError)


def test_plain_helper_handles_masks():
    masked = np.ma.MaskedArray([1, 2], mask=[True, False])
    assert plain(masked) == [None, 2]


@pytest.mark.parametrize("spec, value", [
    (ParamSpec("p", np.int8, shape=(2,)), np.array([1, 300])),
    (ParamSpec("p", np.uint8, shape=(2,)), [1, -1]),
    (ParamSpec("p", np.int16, shape=(2,)), np.array([1, 2**20], dtype=np.int64)),
    (ParamSpec("p", np.float64, shape=(2,)), np.array([True, False])),
    (ParamSpec("p", np.int64, shape=(2,)), [True, False]),
    (ParamSpec("p", np.complex128), True),
])
def test_array_values_are_not_silently_wrapped_or_coerced(store, spec, value):
    ds = DataSet("wrap", [spec], store=store)
    with pytest.raises(ValueTypeError):
        ds.add_result(p=value)
    with pytest.raises(ValueTypeError):
        ds.add_results({"p": np.array([value])})
    assert ds.length == 0


def test_small_int_arrays_from_python_lists(store):
    ds = DataSet("ints", [ParamSpec("p", np.uint8, shape=(3,))], store=store)
    ds.add_result(p=[0, 128, 255])
    ds.add_results({"p": [[1, 2, 3]]})
    got = ds.get_data("p")[0]
    assert got.dtype == np.uint8 and got.tolist() == [[0, 128, 255], [1, 2, 3]]
