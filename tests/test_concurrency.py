"""Several connections and threads on one store."""

from __future__ import annotations

import threading

import numpy as np

import qdataset
from qdataset import DataSet, ParamSpec


def test_second_connect_reads_a_run_in_progress(store, xy_specs):
    ds = DataSet("live", xy_specs, store=store)
    ds.add_results({"x": [0.0, 1.0], "y": [0.0, 10.0]})
    with qdataset.connect(store.url) as other:
        view = other.read_dataset(ds.id)
        assert view.length == 2 and not view.is_marked_complete
        assert view.get_data("y")[0].tolist() == [0.0, 10.0]
        cur = view.cursor()
        ds.add_result(x=2.0, y=20.0)
        ds.add_result(x=3.0, y=30.0)
        ds.flush()
        assert view.length == 4
        assert view.get_data("x", start=2)[0].tolist() == [2.0, 3.0]
        assert cur.read("y")[0].tolist() == [20.0, 30.0]
        ds.mark_completed()
        assert view.is_marked_complete
        assert [r.completed for r in other.runs()] == [True]


def test_second_connect_sees_rows_flushed_by_the_timer(store, xy_specs):
    ds = DataSet("timer", xy_specs, store=store)
    with qdataset.connect(store.url) as other:
        view = other.read_dataset(ds.id)
        ds.add_result(x=1.0, y=2.0)  # no explicit flush: the 0.05 s timer writes it
        deadline = threading.Event()
        for _ in range(100):
            if view.length == 1:
                break
            deadline.wait(0.02)
        assert view.length == 1
        assert view.get_data("y")[0].tolist() == [2.0]


def _write_run(store, name, count, errors):
    try:
        specs = [ParamSpec("i", np.int64), ParamSpec("v", np.float64, shape=(4,))]
        ds = DataSet(name, specs, store=store)
        for i in range(count):
            ds.add_result(i=i, v=np.full(4, float(i)))
            if i % 100 == 0:
                ds.add_results([{"i": -1, "v": np.zeros(4)}])
        ds.mark_completed()
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _check_run(store, name, count):
    (info,) = store.runs(name=name)
    assert info.completed
    i, v = store.read_dataset(info.id).get_data("i", "v")
    expected = []
    for k in range(count):
        expected.append(k)
        if k % 100 == 0:
            expected.append(-1)
    assert i.tolist() == expected
    np.testing.assert_array_equal(v[:, 0], np.maximum(i, 0).astype(float))


def test_two_threads_write_two_runs_in_one_store(store):
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_write_run, args=(store, name, 800, errors))
               for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    for name in ("left", "right"):
        _check_run(store, name, 800)


def test_two_threads_two_connections_same_database(store_url):
    errors: list[BaseException] = []
    stores = [qdataset.connect(store_url, flush_interval=0.01) for _ in range(2)]
    try:
        threads = [threading.Thread(target=_write_run, args=(s, name, 600, errors))
                   for s, name in zip(stores, ("one", "two"), strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        for name in ("one", "two"):
            _check_run(stores[0], name, 600)
    finally:
        for s in stores:
            s.close()


def test_reader_thread_while_writer_writes(store_url):
    total = 3000
    errors: list[BaseException] = []
    seen: list[int] = []
    with qdataset.connect(store_url, flush_interval=0.01) as writer_store, \
            qdataset.connect(store_url) as reader_store:
        ds = DataSet("rw", [ParamSpec("i", np.int64), ParamSpec("sq", np.int64)],
                     store=writer_store)
        view = reader_store.read_dataset(ds.id)
        done = threading.Event()

        def reader():
            try:
                cur = view.cursor(0)
                collected = []
                while True:
                    finished = done.is_set()
                    i, sq = cur.read("i", "sq")
                    assert (sq == i * i).all()
                    collected.extend(i.tolist())
                    seen.append(view.length)
                    if finished and cur.position == total:
                        break
                assert collected == list(range(total))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        for k in range(0, total, 10):
            if k % 200 == 0:
                ds.add_results({"i": np.arange(k, k + 10), "sq": np.arange(k, k + 10) ** 2})
            else:
                ds.add_results([{"i": j, "sq": j * j} for j in range(k, k + 10)])
        ds.mark_completed()
        done.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    assert seen == sorted(seen)  # the length a reader sees never goes back
    assert seen[-1] == total
