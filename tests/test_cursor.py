"""Cursors: reading what is new since the last read."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qdataset import DataSet, IndexRangeError, ParamSpec, connect
from qdataset.recent import RecentRows


@pytest.fixture
def ds(store):
    return DataSet("cur", [ParamSpec("x", np.float64), ParamSpec("n", np.int64)], store=store)


def test_cursor_starts_at_the_end_by_default(ds):
    ds.add_results([{"x": 1.0, "n": 1}, {"x": 2.0, "n": 2}])
    cur = ds.cursor()
    assert cur.position == 2
    xs, ns = cur.read("x", "n")
    assert xs.dtype == np.float64 and len(xs) == 0
    assert ns.dtype == np.int64 and len(ns) == 0
    ds.add_result(x=3.0, n=3)
    xs, ns = cur.read("x", "n")
    assert xs.tolist() == [3.0] and ns.tolist() == [3]
    assert cur.position == 3


def test_cursor_zero_reads_everything_then_only_new_rows(ds):
    cur = ds.cursor(0)
    for i in range(5):
        ds.add_result(x=float(i), n=i)
    assert cur.read("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert cur.read("x")[0].tolist() == []
    ds.add_results({"x": np.array([5.0, 6.0]), "n": np.array([5, 6])})
    assert cur.read("n")[0].tolist() == [5, 6]
    assert cur.position == 7


def test_cursor_at_any_index(ds):
    ds.add_results({"x": np.arange(10.0), "n": np.arange(10)})
    cur = ds.cursor(7)
    assert cur.read("n")[0].tolist() == [7, 8, 9]
    with pytest.raises(IndexRangeError):
        ds.cursor(-1)


def test_cursor_shared_between_threads_returns_each_row_once(ds):
    ds.add_results({"x": np.arange(2000.0), "n": np.arange(2000)})
    cur = ds.cursor(0)
    got: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def reader(slot):
        try:
            for _ in range(50):
                got[slot].extend(cur.read("n")[0].tolist())
        except BaseException as exc:  # noqa: BLE001 - a thread's error only warns otherwise
            errors.append(exc)

    writer_done = threading.Event()

    def writer():
        for i in range(2000, 3000):
            ds.add_result(x=float(i), n=i)
        writer_done.set()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [t for t in threads if t.is_alive()]
    assert errors == []
    assert writer_done.is_set()
    rest = cur.read("n")[0].tolist()
    everything = sorted(sum(got, []) + rest)
    assert everything == list(range(3000))


def test_cursor_on_a_view_from_another_connection(store_url, ds):
    ds.add_result(x=1.0, n=1)
    ds.flush()  # other connections see flushed rows only
    with connect(store_url) as other:
        view = other.read_dataset(ds.id)
        cur = view.cursor()
        assert cur.position == 1
        ds.add_result(x=2.0, n=2)
        ds.flush()
        assert cur.read("n")[0].tolist() == [2]


def test_writer_cursor_reads_match_the_database_through_every_kind_of_change(store, monkeypatch):
    """Reads served from the writer's decoded cache equal what the database holds."""
    rng = np.random.default_rng(3)
    ds = DataSet("mixed", [ParamSpec("x", np.float64), ParamSpec("n", np.int64, optional=True),
                           ParamSpec("s", np.str_), ParamSpec("z", np.complex64),
                           ParamSpec("t", np.float32, shape=(2,))], store=store)
    cur = ds.cursor(0)
    served = {"cache": 0}
    read_recent = RecentRows.read

    def counting(window, names, start):
        arrays = read_recent(window, names, start)
        served["cache"] += arrays is not None
        return arrays

    monkeypatch.setattr(RecentRows, "read", counting)
    seen = 0
    for _ in range(60):
        action = rng.integers(0, 6)
        if action <= 2:
            for _ in range(int(rng.integers(1, 30))):
                i = ds.length
                ds.add_result(x=i * 0.5, n=None if i % 7 == 0 else i, s=f"r{i}",
                              z=complex(i, -i), t=[i, -i])
        elif action == 3:
            k = int(rng.integers(1, 50))
            start = ds.length
            ds.add_results({"x": np.arange(start, start + k) * 0.5,
                            "n": np.arange(start, start + k), "s": [f"b{j}" for j in range(k)],
                            "z": np.ones(k, np.complex64), "t": np.zeros((k, 2), np.float32)})
        elif action == 4 and ds.length:
            ds.modify_result(int(rng.integers(0, ds.length)), x=-1.0)
        else:
            before = cur.position
            got = cur.read("x", "n", "s", "z", "t")
            assert cur.position == ds.length
            expected = ds.get_data("x", "n", "s", "z", "t", start=before, end=cur.position)
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(np.ma.getdata(g), np.ma.getdata(e))
                np.testing.assert_array_equal(np.ma.getmaskarray(g), np.ma.getmaskarray(e))
                assert g.dtype.kind == e.dtype.kind
            seen += len(got[0])
    ds.add_parameter(ParamSpec("late", np.float64, optional=True))
    ds.add_result(x=1.0, n=1, s="a", z=1j, t=[0, 0], late=2.0)
    late = cur.read("late", "x")
    assert late[0][-1] == 2.0 and np.isnan(late[0][:-1]).all()  # may be one row only, so:
    (whole,) = ds.get_data("late")
    assert len(whole) > 1 and whole[-1] == 2.0 and np.isnan(whole[:-1]).all()
    assert seen + len(late[0]) == ds.length
    assert served["cache"] >= 2  # the cache path was really exercised


def test_recent_rows_window_is_bounded():
    from qdataset.recent import RecentRows
    from qdataset.store.codec import ColumnCodec

    codec = ColumnCodec(ParamSpec("x", np.float64))
    recent = RecentRows(limit=100)
    for batch in range(10):
        rows = [[i, float(i)] for i in range(batch * 40, batch * 40 + 40)]
        recent.add(rows, ["x"], [codec])
    assert recent.stop == 400
    assert recent.stop - recent.start <= 140  # at most limit + one batch
    assert recent.read(["x"], 10) is None  # dropped: the caller reads the database
    assert recent.read(["x"], 390)[0].tolist() == [float(i) for i in range(390, 400)]
    recent.add([[500, 1.0]], ["x"], [codec])  # a gap starts a new window
    assert (recent.start, recent.stop) == (500, 501)


def test_writer_cursor_float_rows_with_and_without_missing_values(store):
    """All-float runs take the one-matrix decode; a missing value falls back per column."""
    ds = DataSet("floats", [ParamSpec("x", np.float64), ParamSpec("h", np.float32),
                            ParamSpec("y", np.float64, optional=True)], store=store)
    cur = ds.cursor(0)
    for i in range(10):
        ds.add_result(x=i / 3, h=i / 7, y=i * 1.5)
    x, h, y = cur.read("x", "h", "y")
    assert x.tolist() == [i / 3 for i in range(10)]
    assert h.dtype == np.float32 and h.tolist() == [np.float32(i / 7) for i in range(10)]
    assert y.tolist() == [i * 1.5 for i in range(10)]
    for i in range(10, 13):
        ds.add_result(x=float(i), h=0.5, **({} if i == 11 else {"y": -1.0}))
    x, h, y = cur.read("x", "h", "y")
    assert x.tolist() == [10.0, 11.0, 12.0] and h.tolist() == [0.5] * 3
    assert y[0] == -1.0 and np.isnan(y[1]) and y[2] == -1.0
    stored = ds.get_data("y", start=10)[0]
    np.testing.assert_array_equal(stored, y)
