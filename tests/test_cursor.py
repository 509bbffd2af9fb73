"""Cursors: reading what is new since the last read."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qdataset import DataSet, IndexRangeError, ParamSpec, connect


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

    def reader(slot):
        for _ in range(50):
            got[slot].extend(cur.read("n")[0].tolist())

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
