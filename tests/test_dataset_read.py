"""DataSet read path: get_data, ranges, dtypes and shapes, arrays, SQL-looking names."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import snapshot, stored

import qdataset
from qdataset import DataSet, IndexRangeError, ParamSpec, UnknownParameterError

ALL_KINDS = [
    ParamSpec("f", np.float64),
    ParamSpec("f32", np.float32),
    ParamSpec("i", np.int64),
    ParamSpec("i8", np.int8),
    ParamSpec("u16", np.uint16),
    ParamSpec("b", bool),
    ParamSpec("s", str),
    ParamSpec("z", np.complex128),
    ParamSpec("z64", np.complex64),
    ParamSpec("vec", np.float64, shape=(3,)),
    ParamSpec("img", np.int32, shape=(2, 3)),
    ParamSpec("zvec", np.complex128, shape=(2,)),
    ParamSpec("burst", np.int16, shape=(None,)),
]


def _row(i: int) -> dict:
    return {
        "f": i / 3, "f32": i + 0.5, "i": 10**12 + i, "i8": -i, "u16": 60000 + i,
        "b": i % 2 == 0, "s": f"välue {i} ✓" * (i + 1), "z": complex(i, -i),
        "z64": np.complex64(complex(0.5, i)), "vec": [i, i + 1.5, i + 2],
        "img": np.arange(6).reshape(2, 3) * i, "zvec": [1j * i, i],
        "burst": np.arange(i, dtype=np.int16),
    }


@pytest.fixture
def full(store):
    ds = DataSet("kinds", ALL_KINDS, store=store)
    ds.add_results([_row(i) for i in range(5)])
    return ds


def test_values_dtypes_and_shapes(full):
    rows = [_row(i) for i in range(5)]
    data = dict(zip([s.name for s in ALL_KINDS], full.get_data(*ALL_KINDS), strict=True))
    for spec in ALL_KINDS:
        array = data[spec.name]
        assert not isinstance(array, np.ma.MaskedArray), spec.name
        assert len(array) == 5
        if spec.is_variable_length:
            for i, value in enumerate(array):
                assert value.dtype == spec.type
                np.testing.assert_array_equal(value, rows[i][spec.name])
            continue
        if spec.type.kind == "U":
            assert array.dtype.kind == "U"
        else:
            assert array.dtype == spec.type, spec.name
        assert array.shape == (5, *spec.shape), spec.name
        expected = np.array([r[spec.name] for r in rows], dtype=array.dtype)
        np.testing.assert_array_equal(array, expected, err_msg=spec.name)


def test_values_survive_a_new_connection(full, store):
    expected = snapshot(full)  # reading flushes
    with qdataset.connect(store.url) as other:
        assert snapshot(other.read_dataset(full.id)) == expected


def test_get_data_by_name_spec_and_default(full):
    by_name = full.get_data("f", "s")
    by_spec = full.get_data(ALL_KINDS[0], ALL_KINDS[6])
    mixed = full.get_data(ALL_KINDS[0], "s")
    for a, b, c in zip(by_name, by_spec, mixed, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    everything = full.get_data()
    assert len(everything) == len(ALL_KINDS)
    np.testing.assert_array_equal(everything[0], by_name[0])
    # order follows the request, repeats allowed
    s, f, f2 = full.get_data("s", "f", "f")
    np.testing.assert_array_equal(s, by_name[1])
    np.testing.assert_array_equal(f2, f)


def test_get_data_unknown_parameter(full):
    with pytest.raises(UnknownParameterError, match="nope"):
        full.get_data("f", "nope")
    with pytest.raises(UnknownParameterError):
        full.get_data(ParamSpec("other", np.float64))


@pytest.mark.parametrize("start, end, expected", [
    (0, None, range(0, 10)),
    (3, None, range(3, 10)),
    (0, 4, range(0, 4)),
    (2, 7, range(2, 7)),
    (8, 100, range(8, 10)),   # end clamped
    (9, 10, range(9, 10)),
])
def test_ranges(store, start, end, expected):
    ds = DataSet("r", [ParamSpec("n", np.int64), ParamSpec("v", np.float64, shape=(2,))],
                 store=store)
    ds.add_results({"n": np.arange(10), "v": np.arange(20.0).reshape(10, 2)})
    n, v = ds.get_data("n", "v", start=start, end=end)
    assert n.tolist() == list(expected)
    assert v.tolist() == [[2.0 * k, 2.0 * k + 1] for k in expected]


@pytest.mark.parametrize("start, end", [(5, 5), (6, 3), (10, None), (11, None), (50, 60),
                                        (0, 0), (3, -1)])
def test_empty_ranges_have_dtype_and_shape(full, start, end):
    full.add_results([_row(i) for i in range(5, 10)])
    arrays = full.get_data(*ALL_KINDS, start=start, end=end)
    for spec, array in zip(ALL_KINDS, arrays, strict=True):
        assert len(array) == 0
        if spec.is_variable_length:
            assert array.shape == (0,)
            continue
        assert array.shape == (0, *spec.shape), spec.name
        if spec.type.kind == "U":
            assert array.dtype.kind == "U"
        else:
            assert array.dtype == spec.type, spec.name


def test_empty_dataset_gives_empty_arrays(store):
    ds = DataSet("empty", ALL_KINDS, store=store)
    arrays = ds.get_data()
    assert [len(a) for a in arrays] == [0] * len(ALL_KINDS)
    assert arrays[0].dtype == np.float64 and arrays[2].dtype == np.int64
    assert arrays[6].dtype.kind == "U"
    assert arrays[10].shape == (0, 2, 3) and arrays[10].dtype == np.int32


def test_bad_start(full):
    with pytest.raises(IndexRangeError):
        full.get_data("f", start=-1)
    with pytest.raises(IndexRangeError):
        full.get_data("f", start=1.5)


def test_reads_see_unflushed_rows(store_url, xy_specs):
    with qdataset.connect(store_url, flush_interval=60) as slow:
        ds = DataSet("buf", xy_specs, store=slow)
        for i in range(7):
            ds.add_result(x=float(i), y=float(-i))
        assert ds.length == 7
        assert ds.get_data("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        # the read flushed: a second connection sees them too
        with qdataset.connect(store_url) as other:
            assert other.read_dataset(ds.id).length == 7


def test_strings_are_unicode_arrays(store):
    ds = DataSet("s", [ParamSpec("s", str)], store=store)
    values = ["", "a", "longer string", "ünïcødé ✓ 漢字", "it's \"quoted\""]
    ds.add_results({"s": values})
    ds.add_result(s="x" * 1000)
    (got,) = ds.get_data("s")
    assert got.dtype.kind == "U"
    assert got.tolist() == [*values, "x" * 1000]


def test_float_special_values(store):
    ds = DataSet("f", [ParamSpec("f", np.float64)], store=store)
    values = [np.inf, -np.inf, 0.0, 5e-324, 1.7976931348623157e308, -1e-300]
    ds.add_results({"f": np.array(values)})
    ds.add_result(f=np.nan)
    got = ds.get_data("f")[0]
    assert got[:-1].tolist() == values
    assert np.isnan(got[-1])


def test_int_extremes(store):
    specs = [ParamSpec("i64", np.int64), ParamSpec("i8", np.int8), ParamSpec("u32", np.uint32)]
    ds = DataSet("ints", specs, store=store)
    i64, i8, u32 = np.iinfo(np.int64), np.iinfo(np.int8), np.iinfo(np.uint32)
    ds.add_result(i64=i64.min, i8=i8.min, u32=u32.min)
    ds.add_results({"i64": [i64.max], "i8": [i8.max], "u32": [u32.max]})
    a, b, c = ds.get_data("i64", "i8", "u32")
    assert a.tolist() == [i64.min, i64.max] and a.dtype == np.int64
    assert b.tolist() == [i8.min, i8.max] and b.dtype == np.int8
    assert c.tolist() == [u32.min, u32.max] and c.dtype == np.uint32


def test_array_parameters_bulk_and_rows(store):
    specs = [ParamSpec("trace", np.float64, shape=(100,)),
             ParamSpec("img", np.uint8, shape=(4, 5)),
             ParamSpec("iq", np.complex64, shape=(3,)),
             ParamSpec("burst", np.float32, shape=(None, 2))]
    rng = np.random.default_rng(0)
    traces = rng.standard_normal((6, 100))
    imgs = rng.integers(0, 255, (6, 4, 5)).astype(np.uint8)
    iqs = (rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))).astype(np.complex64)
    bursts = [rng.standard_normal((k, 2)).astype(np.float32) for k in (0, 1, 5, 2, 3, 7)]
    ds = DataSet("arrays", specs, store=store)
    ds.add_results({"trace": traces[:3], "img": imgs[:3], "iq": iqs[:3], "burst": bursts[:3]})
    for k in range(3, 6):
        ds.add_result(trace=traces[k], img=imgs[k].tolist(), iq=iqs[k], burst=bursts[k])
    t, m, q, b = ds.get_data(*specs)
    np.testing.assert_array_equal(t, traces)
    np.testing.assert_array_equal(m, imgs)
    assert m.dtype == np.uint8 and q.dtype == np.complex64
    np.testing.assert_array_equal(q, iqs)
    assert b.dtype == object and len(b) == 6
    for got, want in zip(b, bursts, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    _, m2, _, b2 = ds.get_data(*specs, start=2, end=4)
    np.testing.assert_array_equal(m2, imgs[2:4])
    np.testing.assert_array_equal(b2[1], bursts[3])


def test_complex_scalars(store):
    ds = DataSet("z", [ParamSpec("z", np.complex128)], store=store)
    values = np.array([1 + 2j, -3.5j, 0, np.inf + 1j])
    ds.add_results({"z": values})
    ds.add_result(z=2)  # an int is a valid complex value
    ds.add_result(z=np.complex64(1 - 1j))
    got = ds.get_data("z")[0]
    assert got.dtype == np.complex128
    assert got.tolist() == [*values.tolist(), 2 + 0j, 1 - 1j]


def test_get_parameters_length_is_empty(store, xy_specs):
    ds = DataSet("p", xy_specs, store=store)
    assert ds.get_parameters() == xy_specs
    assert ds.is_empty and ds.length == 0 and len(ds) == 0
    ds.add_result(x=1.0, y=2.0)
    assert not ds.is_empty and ds.length == 1
    view = store.read_dataset(ds.id)
    assert view.get_parameters() == xy_specs
    assert view.get_parameters()[0].unit == "V"
    assert view.get_parameters()[1].depends_on == ("x",)


def test_live_view_sees_new_rows_parameters_and_completion(store, xy_specs):
    ds = DataSet("live", xy_specs, store=store)
    view = store.read_dataset(ds.id)
    assert view.length == 0 and not view.is_marked_complete
    ds.add_result(x=1.0, y=2.0)
    ds.flush()
    assert view.length == 1
    assert view.get_data("y")[0].tolist() == [2.0]
    ds.add_parameter(ParamSpec("n", np.int64, optional=True))
    ds.add_result(x=2.0, y=3.0, n=4)
    ds.flush()
    assert view.get_data("n")[0].tolist() == [None, 4]
    assert [s.name for s in view.get_parameters()] == ["x", "y", "n"]
    ds.mark_completed()
    assert view.is_marked_complete


SQL_NAMES = ["select", '"quoted"', "a'b", "drop table runs;--", "with space", "Ω",
             "`back`", "[bracket]", "x); DROP TABLE runs; --", "order"]


def test_sql_looking_parameter_names(store):
    specs = [ParamSpec(name, np.float64 if i % 2 else str, optional=True)
             for i, name in enumerate(SQL_NAMES)]
    ds = DataSet("names", specs, store=store)
    row = {name: (float(i) if i % 2 else f"v{i}") for i, name in enumerate(SQL_NAMES)}
    ds.add_result(row)
    ds.add_results([row, {SQL_NAMES[0]: "only"}])
    ds.add_results({name: [value] for name, value in row.items()})
    ds.modify_result(1, {SQL_NAMES[1]: 99.0, SQL_NAMES[2]: None})
    ds.add_parameter(ParamSpec("from", np.int64, optional=True))
    ds.add_parameter_values(ParamSpec("where;", np.int64), [1, 2, 3, 4])
    ds.mark_completed()
    view = store.read_dataset(ds.id)
    data = dict(zip(SQL_NAMES, view.get_data(*SQL_NAMES), strict=True))
    assert data["select"].tolist() == ["v0", "v0", "only", "v0"]
    assert data['"quoted"'].tolist()[:2] == [1.0, 99.0]
    assert data["a'b"].mask.tolist() == [False, True, True, False]
    assert data["drop table runs;--"].tolist()[0] == 3.0
    assert view.get_data("where;")[0].tolist() == [1, 2, 3, 4]
    assert [s.name for s in view.get_parameters()] == [*SQL_NAMES, "from", "where;"]
    assert store.runs()[0].id == ds.id  # the runs table is still there


@pytest.mark.parametrize("name", SQL_NAMES)
def test_sql_looking_run_names(store, xy_specs, name):
    ds = DataSet(name, xy_specs, [[1.0], [2.0]], store=store)
    ds.add_metadata(name, {name: name})
    ds.mark_completed()
    assert name in ds.id
    (info,) = store.runs(name=name)
    assert info.id == ds.id and info.name == name and info.length == 1
    view = store.read_dataset(ds.id)
    assert view.get_metadata(name) == {name: name}
    assert snapshot(view) == stored(store, ds.id) == snapshot(ds)


def test_missing_complex_values_are_nan_in_both_parts(store):
    ds = DataSet("cplx", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    ds.add_parameter(ParamSpec("z", np.complex128, optional=True))
    ds.add_result(x=2.0, z=1 + 2j)
    z = ds.get_data("z")[0]
    assert np.isnan(z[0].real) and np.isnan(z[0].imag)
    assert z[1] == 1 + 2j


def test_a_read_without_missing_values_does_not_import_numpy_ma(tmp_path):
    """numpy 2 imports ``numpy.ma`` on first use, 13 ms of a read in a fresh process:
    only a read that finds missing values may pay for it (and still gets them)."""
    import json
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'ma.db'}"
    with qdataset.connect(url) as store:
        ds = DataSet("ma", [ParamSpec("x", np.float64), ParamSpec("n", np.int64, optional=True),
                            ParamSpec("s", str)], store=store)
        ds.add_results({"x": np.arange(5.0), "n": np.arange(5), "s": list("abcde")})
        ds.add_result(x=9.0, s="f")  # a missing integer: a masked array when read
        ds.mark_completed()
    probe = (
        "import json, sys, qdataset\n"
        f"ds = qdataset.connect({url!r}).read_dataset({ds.id!r})\n"
        "before = 'numpy.ma' in sys.modules\n"
        "x, s = ds.get_data('x', 's'); xs = ds.get_data('x', start=1, end=3)\n"
        "plain = 'numpy.ma' in sys.modules\n"
        "(n,) = ds.get_data('n')\n"
        "print(json.dumps([before, plain, type(n).__name__, n.mask.tolist(), x.tolist()]))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    before, plain, kind, mask, x = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, plain) == (False, False)
    assert kind == "MaskedArray" and mask == [False] * 5 + [True]
    assert x == [0.0, 1.0, 2.0, 3.0, 4.0, 9.0]
