"""SQLite bulk inserts build the next statement's parameters on a helper thread."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

import qdataset
from qdataset import DataSet, ParamSpec
from qdataset.store import sqlite as sqlite_engine


def test_chunks_come_in_order_and_are_made_on_the_helper_thread():
    made_on = []

    def chunks():
        for k in range(5):
            made_on.append(threading.current_thread().name)
            yield [k]

    assert list(sqlite_engine._made_ahead(chunks())) == [[0], [1], [2], [3], [4]]
    assert made_on and all(name.startswith("qdataset-params") for name in made_on)


def test_an_error_making_a_chunk_reaches_the_caller_after_the_chunks_before_it():
    def chunks():
        yield [1]
        raise ValueError("cannot convert column 'x'")

    got = []
    with pytest.raises(ValueError, match="column 'x'"):
        for chunk in sqlite_engine._made_ahead(chunks()):
            got.append(chunk)
    assert got == [[1]]


def _use_helper_in_child(queue) -> None:
    queue.put(list(sqlite_engine._made_ahead(iter([[1], [2]]))))


def test_a_forked_child_gets_a_helper_of_its_own():
    """A forked process has none of its parent's threads: a pool inherited from the
    parent would never run the child's work, so the child's insert would hang."""
    assert list(sqlite_engine._made_ahead(iter([[0]]))) == [[0]]  # parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_use_helper_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=30) == [[1], [2]]
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def test_bulk_rows_are_stored_in_order_across_many_statements(tmp_path):
    rows = 3 * 4096 + 17  # several multi-row statements and a short tail
    with qdataset.connect(tmp_path / "ahead.db") as store:
        ds = DataSet("bulk", [ParamSpec("x", np.float64), ParamSpec("n", np.int64)],
                     store=store)
        ds.add_results({"x": np.linspace(0, 1, rows), "n": np.arange(rows)})
        x, n = store.read_dataset(ds.id).get_data("x", "n")
    assert n.tolist() == list(range(rows))
    assert x.tobytes() == np.linspace(0, 1, rows).tobytes()
