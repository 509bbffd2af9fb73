"""The error boundary: database and driver errors leave qdataset as QDatasetErrors."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

import qdataset
from qdataset import (
    CompletedError,
    DataSet,
    InvalidArgumentError,
    InvalidCallbackError,
    ParamSpec,
    QDatasetError,
    StorageLimitError,
    StoreClosedError,
    StoreError,
)
from qdataset.dataset import MAX_NAME_LENGTH


def test_closed_store_refuses_results_before_buffering_them(store_url):
    store = qdataset.connect(store_url)
    ds = DataSet("late", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    store.close()
    with pytest.raises(StoreClosedError, match="connect"):
        ds.add_result(x=2.0)
    with pytest.raises(StoreClosedError):
        ds.add_results({"x": np.arange(3.0)})
    with pytest.raises(StoreClosedError):  # reads are refused too (issue 13)
        _ = ds.length
    with pytest.raises(StoreClosedError):
        store.runs()
    with pytest.raises(StoreClosedError):
        store.read_dataset(ds.id)
    with qdataset.connect(store_url) as again:  # what was accepted before close is stored
        # nothing of the refused calls was counted, so nothing can be silently dropped
        assert again.read_dataset(ds.id).get_data("x")[0].tolist() == [1.0]


def test_subscribing_on_a_closed_store_says_so(store_url):
    store = qdataset.connect(store_url)
    ds = DataSet("late", [ParamSpec("x", np.float64)], store=store)
    store.close()
    with pytest.raises(StoreClosedError):
        ds.subscribe(lambda dataset, length, state: None)


def test_long_run_names_are_refused_alike_on_every_engine(store):
    longest = "n" * MAX_NAME_LENGTH
    assert DataSet(longest, store=store).name == longest
    with pytest.raises(InvalidArgumentError, match="shorten") as raised:
        DataSet("n" * (MAX_NAME_LENGTH + 1), store=store)
    assert isinstance(raised.value, ValueError)
    assert [r.name for r in store.runs()] == [longest]  # the refused one left nothing


def test_completion_lock_violation_is_recognised_by_code(store):
    """A write the database itself rejects (bypassing the DataSet's own check)
    comes back as CompletedError, whatever the driver said."""
    ds = DataSet("locked", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    ds.mark_completed()
    with store.reading() as conn:
        table, pk = conn.execute(sa.text("SELECT results_table, pk FROM runs "
                                         "WHERE run_id = :i"), {"i": ds.id}).one()
    # Plain SQL through the store's error boundary: no Python-side check at all.
    with pytest.raises(CompletedError) as raised, store.transaction() as conn:
        conn.execute(sa.text(f'INSERT INTO "{table}" ("_qd_run", "_qd_index") '
                             "VALUES (:pk, 1)"), {"pk": pk})
    assert raised.value.__cause__ is not None  # the driver's error is kept as the cause
    assert ds.get_data("x")[0].tolist() == [1.0]


def test_unreachable_server_gives_a_short_error_without_the_password():
    with pytest.raises(StoreError) as raised:
        qdataset.connect("postgresql+psycopg://qd:s3cret-pw@127.0.0.1:9/nowhere")
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "reachable" in message


def test_broken_url_is_reported_without_the_password():
    with pytest.raises(StoreError) as raised:
        qdataset.connect("nodriver://qd:s3cret-pw@host/db")
    assert "s3cret-pw" not in str(raised.value)
    with pytest.raises(StoreError) as raised:
        qdataset.connect("postgresql+psycopg://qd:s3cret-pw@host:notaport/db")
    assert "s3cret-pw" not in str(raised.value)


def test_store_repr_hides_the_password():
    store = qdataset.Store.__new__(qdataset.Store)  # repr only: no server needed
    import sqlalchemy as sa

    store.engine = sa.create_engine("postgresql+psycopg://qd:s3cret-pw@host/db")
    assert "s3cret-pw" not in repr(store) and "s3cret-pw" not in store.display_url


def test_bad_flush_interval_is_a_qdataset_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="flush_interval"):
        qdataset.connect(tmp_path / "x.db", flush_interval=0)


@pytest.mark.parametrize("callback", [
    lambda dataset: None,                      # too few parameters
    lambda dataset, length, state, extra: None,  # a required fourth
    "not callable",
])
def test_subscribe_refuses_callbacks_it_cannot_call(store, callback):
    ds = DataSet("cb", [ParamSpec("x", np.float64)], store=store)
    with pytest.raises(InvalidCallbackError, match="callback"):
        ds.subscribe(callback)
    ds.subscribe(lambda *args: None)  # flexible signatures are fine
    ds.subscribe(lambda dataset, length, state=None, *rest: None)


@pytest.mark.slow
def test_too_many_parameters_is_a_storage_limit_error(store):
    """SQLite stops at 2,000 columns, PostgreSQL at 1,600: a clear error, nothing left."""
    limit = 2000 if store.dialect == "sqlite" else 1600
    specs = [ParamSpec(f"p{i}", np.float64) for i in range(limit + 1)]
    with pytest.raises(StorageLimitError) as raised:
        DataSet("wide", specs, store=store)
    assert isinstance(raised.value, QDatasetError)
    assert "fewer" in str(raised.value)
    assert store.runs() == []  # the failed run was rolled back


def test_a_read_only_sqlite_file_gives_read_only_error(tmp_path):
    import sqlite3

    from qdataset import ReadOnlyError
    from qdataset.store.boundary import translate

    path = tmp_path / "lab.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as raised:
        readonly.execute("INSERT INTO t VALUES (1)")
    error = translate(raised.value, f"sqlite:///{path}")
    assert isinstance(error, ReadOnlyError) and "write permission" in str(error)
