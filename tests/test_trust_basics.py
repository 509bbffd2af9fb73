"""Issue 13, items 4 and 5: a failed measurement says so; reading never creates;
a closed store refuses reads too."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import drop_postgres_schema, postgres_schema_url
from helpers import migrate_to

import qdataset
from qdataset import (
    CompletedError,
    DataSet,
    InvalidArgumentError,
    ParamSpec,
    StoreClosedError,
    StoreError,
    read_dataset,
)
from qdataset.cursor import Cursor
from qdataset.store.migrate import head_revision


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- item 5: reading never creates --------------------------------------------------------------


def test_create_false_refuses_a_missing_sqlite_file_and_makes_nothing(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "lab.db"
    for url in (f"sqlite:///{missing}", str(missing), missing):
        with pytest.raises(StoreError, match="does not exist") as raised:
            qdataset.connect(url, create=False)
        assert str(missing) in str(raised.value)  # names the file it looked for
    assert not (tmp_path / "no").exists()  # no file, no folder
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ["empty", "foreign"])
def test_create_false_refuses_a_file_without_a_store_and_leaves_it_alone(tmp_path, content):
    path = tmp_path / "other.db"
    if content == "empty":
        path.touch()
    else:
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE notes (text TEXT)")
        raw.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="no qdataset store") as raised:
        qdataset.connect(path, create=False)
    assert str(path) in str(raised.value)
    assert _digest(path) == before  # not migrated, not even switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_create_false_opens_an_existing_store(store_url, xy_specs):
    with qdataset.connect(store_url) as store:
        ds = DataSet("kept", xy_specs, [[1.0], [2.0]], store=store)
        ds.mark_completed()
    with qdataset.connect(store_url, create=False) as again:
        assert [r.id for r in again.runs()] == [ds.id]
        assert again.read_dataset(ds.id).get_data("y")[0].tolist() == [2.0]


def test_create_false_still_upgrades_an_old_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    migrate_to(engine, "0001")
    engine.dispose()
    with qdataset.connect(url, create=False) as store:
        with store.reading() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() \
                == head_revision()


def test_create_false_on_an_empty_postgresql_schema_creates_nothing():
    schema, url = postgres_schema_url()
    try:
        with pytest.raises(StoreError, match="no qdataset store") as raised:
            qdataset.connect(url, create=False)
        assert schema in str(raised.value)  # the URL, naming the schema, is in the message
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert sa.inspect(conn).get_table_names(schema=schema) == []
        finally:
            engine.dispose()
        with qdataset.connect(url) as created:  # the default still creates
            assert created.runs() == []
        with qdataset.connect(url, create=False) as again:
            assert again.runs() == []
    finally:
        drop_postgres_schema(schema)


def test_read_dataset_of_a_missing_file_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        read_dataset(tmp_path / "missing.db", "some-run")
    with pytest.raises(StoreError, match="does not exist"):
        read_dataset(f"sqlite:///{tmp_path / 'missing.db'}")
    assert list(tmp_path.iterdir()) == []


def test_connect_keeps_creating_by_default(tmp_path):
    path = tmp_path / "new" / "lab.db"
    with qdataset.connect(path) as store:
        assert store.runs() == []
    assert path.exists()


def test_lease_timeout_is_kept_and_checked(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    with qdataset.connect(url) as store:
        assert store.lease_timeout == 5.0
    with qdataset.connect(url, lease_timeout=0.5) as store:
        assert store.lease_timeout == 0.5
    for bad in (0, -1.0, float("nan"), "5", True, None):
        with pytest.raises(InvalidArgumentError, match="lease_timeout"):
            qdataset.connect(url, lease_timeout=bad)


def test_unreachable_server_is_one_line_without_password():
    with pytest.raises(StoreError) as raised:
        qdataset.connect("postgresql+psycopg://qd:s3cret-pw@127.0.0.1:9/nowhere", create=False)
    message = str(raised.value)
    assert "s3cret-pw" not in message and "\n" not in message


# -- item 5: a closed store refuses reads as well as writes ---------------------------------------

READS = {
    "get_data": lambda ds: ds.get_data("x"),
    "length": lambda ds: ds.length,
    "len": len,
    "is_empty": lambda ds: ds.is_empty,
    "is_marked_complete": lambda ds: ds.is_marked_complete,
    "completed_at": lambda ds: ds.completed_at,
    "get_parameters": lambda ds: ds.get_parameters(),
    "get_metadata": lambda ds: ds.get_metadata(),
    "get_metadata_tag": lambda ds: ds.get_metadata("sample"),
    "cursor": lambda ds: ds.cursor(0),
    "add_metadata": lambda ds: ds.add_metadata("late", 1),
    "mark_completed": lambda ds: ds.mark_completed(),
}


@pytest.mark.parametrize("use", sorted(READS))
@pytest.mark.parametrize("kind", ["writer", "view"])
def test_every_use_of_a_closed_store_raises(store_url, use, kind):
    store = qdataset.connect(store_url)
    ds = DataSet("closing", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    ds.add_metadata("sample", "S1")
    ds.flush()
    target = ds if kind == "writer" else store.read_dataset(ds.id)
    assert target.length == 1
    store.close()
    with pytest.raises(StoreClosedError, match="closed"):
        READS[use](target)
    assert ds.id in repr(target)  # identity stays available for messages


@pytest.mark.parametrize("kind", ["writer", "view"])
def test_cursors_of_a_closed_store_raise_and_count_nothing(store_url, kind):
    store = qdataset.connect(store_url)
    ds = DataSet("cursor", [ParamSpec("x", np.float64)], store=store)
    target = ds if kind == "writer" else store.read_dataset(ds.id)
    cursor = target.cursor(0)
    ds.add_result(x=1.0)
    ds.flush()
    assert cursor.read("x")[0].tolist() == [1.0]  # the decoded window holds it (writer)
    ds.add_result(x=2.0)
    direct = Cursor(target, 0)
    store.close()
    for use in (lambda: cursor.read("x"), lambda: cursor.read(), lambda: cursor.available,
                lambda: direct.read("x")):
        with pytest.raises(StoreClosedError):
            use()
    assert cursor.position == 1  # nothing was counted
    with qdataset.connect(store_url) as again:
        assert again.read_dataset(ds.id).get_data("x")[0].tolist() == [1.0, 2.0]


def test_final_callback_during_close_can_still_read(store_url):
    """Reads are refused once close() has finished, not while its last flush is
    being announced: a subscriber told about completion can read what it was told."""
    store = qdataset.connect(store_url, flush_interval=30)
    ds = DataSet("last", [ParamSpec("x", np.float64)], store=store)
    seen: list[object] = []
    done = threading.Event()

    def callback(dataset, length, state):
        if dataset.is_marked_complete:
            deadline = time.monotonic() + 10
            while not dataset.store.closed and time.monotonic() < deadline:
                time.sleep(0.001)  # hold the final call until close() has begun
            seen.append((dataset.store.closed, dataset.get_data("x")[0].tolist()))
            done.set()

    ds.subscribe(callback, min_wait=0)
    for i in range(3):
        ds.add_result(x=float(i))
    ds.mark_completed()
    store.close()  # waits (bounded) for the final call
    assert done.is_set()
    assert seen == [(True, [0.0, 1.0, 2.0])]
    with pytest.raises(StoreClosedError):
        ds.get_data("x")


# -- item 4: a failed measurement says so ------------------------------------------------------


class SweepAborted(RuntimeError):
    pass


def test_exception_in_with_block_completes_and_records_the_error(store_url):
    store = qdataset.connect(store_url, flush_interval=30)  # rows still buffered at the raise
    error = SweepAborted("fridge warmed up at 4 K")
    with pytest.raises(SweepAborted) as raised:
        with DataSet("sweep", [ParamSpec("x", np.float64)], store=store) as ds:
            for i in range(5):
                ds.add_result(x=float(i))
            raise error
    assert raised.value is error  # propagates unchanged
    assert not getattr(error, "__notes__", None)
    try:
        assert ds.is_marked_complete
        assert ds.get_data("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        expected = {"type": f"{__name__}.SweepAborted", "message": "fridge warmed up at 4 K"}
        assert ds.get_metadata("error") == expected
        with pytest.raises(CompletedError):  # locked like any completed run
            ds.add_result(x=9.0)
        (info,) = store.runs()
        assert info.state == "failed" and info.completed and info.length == 5
    finally:
        store.close()
    with qdataset.connect(store_url) as other:  # from another connection too
        view = other.read_dataset(ds.id)
        assert view.get_metadata("error") == expected
        assert view.length == 5


def test_builtin_exception_types_are_recorded_by_plain_name(store):
    with pytest.raises(KeyboardInterrupt):
        with DataSet("interrupted", [ParamSpec("x", np.float64)], store=store) as ds:
            ds.add_result(x=1.0)
            raise KeyboardInterrupt
    assert ds.get_metadata("error") == {"type": "KeyboardInterrupt", "message": ""}
    assert store.runs()[0].state == "failed"


def test_run_states_running_completed_failed(store):
    spec = [ParamSpec("x", np.float64)]
    running = DataSet("a", spec, store=store)
    with DataSet("b", spec, store=store) as completed:
        completed.add_result(x=1.0)
    with pytest.raises(ValueError):
        with DataSet("c", spec, store=store) as failed:
            raise ValueError("bad gate")
    marked = DataSet("d", spec, store=store)
    marked.add_metadata("error", {"type": "manual", "message": "sample broke"})  # users may
    states = {r.id: r.state for r in store.runs()}
    assert states == {running.id: "running", completed.id: "completed",
                      failed.id: "failed", marked.id: "failed"}
    assert completed.id not in [r.id for r in store.runs() if r.state == "failed"]
    with pytest.raises(qdataset.MetadataError):
        completed.get_metadata("error")  # a clean run carries no error tag


def test_a_view_failing_in_a_with_block_records_nothing(store):
    ds = DataSet("watched", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    ds.mark_completed()
    with pytest.raises(ZeroDivisionError):
        with store.read_dataset(ds.id) as view:
            view.get_data("x")
            _ = 1 / 0  # analysis code failing says nothing about the measurement
    assert store.runs()[0].state == "completed"


def test_completion_failure_after_an_exception_does_not_replace_it(store_url, caplog):
    store = qdataset.connect(store_url)
    error = SweepAborted("first")
    with caplog.at_level(logging.WARNING, logger="qdataset"):
        with pytest.raises(SweepAborted) as raised:
            with DataSet("gone", [ParamSpec("x", np.float64)], store=store) as ds:
                ds.add_result(x=1.0)
                store.close()
                raise error
    assert raised.value is error
    notes = " ".join(getattr(error, "__notes__", []))
    assert "completing the run failed" in notes and "closed" in notes
    assert any(ds.id in r.getMessage() for r in caplog.records)
    with qdataset.connect(store_url) as again:  # the rows accepted before close are kept
        assert again.read_dataset(ds.id).get_data("x")[0].tolist() == [1.0]
