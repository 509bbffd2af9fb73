"""Limits checked up front, the same on both engines (issue 13, item 7), and a writer
that cannot get SQLite's write lock told so in bounded time (item 6).

Every limit has one documented value, is checked before anything is created, and
its error states the limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import schema_size

import qdataset
from qdataset import (
    DataSet,
    FlushError,
    InvalidArgumentError,
    InvalidParamSpecError,
    MetadataError,
    ParamSpec,
    StorageLimitError,
    StoreError,
)
from qdataset.dataset import MAX_NAME_LENGTH, MAX_TAG_LENGTH
from qdataset.paramspec import MAX_NAME_BYTES
from qdataset.store.dialect import MAX_PARAMETERS_PER_RUN


def row_counts(store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (conn.exec_driver_sql("SELECT count(*) FROM runs").scalar(),
                conn.exec_driver_sql("SELECT count(*) FROM run_params").scalar())


def test_the_limits_are_the_documented_values():
    assert MAX_NAME_LENGTH == 230
    assert MAX_NAME_BYTES == 63
    assert MAX_TAG_LENGTH == 255
    assert MAX_PARAMETERS_PER_RUN == 1598


# -- run names ---------------------------------------------------------------------------
def test_run_name_limit(store):
    before = (schema_size(store), row_counts(store))
    with pytest.raises(InvalidArgumentError, match=f"at most {MAX_NAME_LENGTH}"):
        DataSet("n" * (MAX_NAME_LENGTH + 1), [ParamSpec("x", np.float64)], store=store)
    assert store.runs() == [] and (schema_size(store), row_counts(store)) == before
    ds = DataSet("n" * MAX_NAME_LENGTH, [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=1.0)
    ds.mark_completed()
    assert store.read_dataset(ds.id).name == "n" * MAX_NAME_LENGTH


# -- parameter names -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["p" * (MAX_NAME_BYTES + 1), "é" * 32])  # 64 bytes in UTF-8
def test_parameter_name_limit_is_checked_by_paramspec(name):
    """Refused when the ParamSpec is made, so before any store is touched."""
    with pytest.raises(InvalidParamSpecError, match=f"limited to {MAX_NAME_BYTES} bytes"):
        ParamSpec(name, np.float64)


def test_parameter_name_at_the_limit_works_on_both_engines(store):
    longest = "é" * 31 + "x"  # 63 bytes in UTF-8
    other = "p" * MAX_NAME_BYTES
    ds = DataSet("long names", [ParamSpec(longest, np.float64), ParamSpec(other, np.int64)],
                 store=store)
    ds.add_result(**{longest: 1.5, other: 2})
    # the same name with another type gets a column of its own, shortened to fit
    ds2 = DataSet("long names as text", [ParamSpec(longest, str)], store=store)
    ds2.add_result(**{longest: "a"})
    ds.mark_completed()
    ds2.mark_completed()
    with qdataset.connect(store.url) as again:
        assert again.read_dataset(ds.id).get_data(longest)[0].tolist() == [1.5]
        assert again.read_dataset(ds2.id).get_data(longest)[0].tolist() == ["a"]


def test_too_long_parameter_name_creates_nothing(store):
    ds = DataSet("existing", [ParamSpec("x", np.float64)], store=store)
    before = (schema_size(store), row_counts(store))
    with pytest.raises(InvalidParamSpecError, match=f"{MAX_NAME_BYTES} bytes"):
        DataSet("bad", [ParamSpec("x", np.float64), ParamSpec("y" * 64, np.float64)],
                store=store)
    with pytest.raises(InvalidParamSpecError, match=f"{MAX_NAME_BYTES} bytes"):
        ds.add_parameter(ParamSpec("z" * 64, np.float64, optional=True))
    assert [r.id for r in store.runs()] == [ds.id]
    assert (schema_size(store), row_counts(store)) == before
    assert [s.name for s in ds.get_parameters()] == ["x"]


# -- metadata tags ---------------------------------------------------------------------------
def test_metadata_tag_limit(store):
    ds = DataSet("tagged", [ParamSpec("x", np.float64)], store=store)
    with pytest.raises(MetadataError, match=f"limited to {MAX_TAG_LENGTH} characters"):
        ds.add_metadata("t" * (MAX_TAG_LENGTH + 1), 1)
    with pytest.raises(MetadataError, match=f"limited to {MAX_TAG_LENGTH} characters"):
        ds.add_metadata("é" * (MAX_TAG_LENGTH + 1), 1)
    assert set(ds.get_metadata()) == {"id", "parameters"}  # nothing stored
    ds.add_metadata("é" * MAX_TAG_LENGTH, {"ok": True})  # characters, not bytes
    with qdataset.connect(store.url) as again:
        assert again.read_dataset(ds.id).get_metadata("é" * MAX_TAG_LENGTH) == {"ok": True}


# -- parameters per run ------------------------------------------------------------------------
def test_parameters_per_run_limit_is_the_same_on_both_engines(store):
    before = (schema_size(store), row_counts(store))
    too_many = [ParamSpec(f"p{k}", np.int8) for k in range(MAX_PARAMETERS_PER_RUN + 1)]
    with pytest.raises(StorageLimitError, match=f"at most {MAX_PARAMETERS_PER_RUN} parameters"):
        DataSet("too wide", too_many, store=store)
    assert store.runs() == [] and (schema_size(store), row_counts(store)) == before


def test_adding_parameters_past_the_limit_creates_nothing(store):
    # bool columns: small enough that PostgreSQL's 8 kB row check passes at 1,598
    ds = DataSet("wide", [ParamSpec(f"p{k}", bool) for k in range(MAX_PARAMETERS_PER_RUN)],
                 store=store)
    before = (schema_size(store), row_counts(store))
    with pytest.raises(StorageLimitError, match=f"at most {MAX_PARAMETERS_PER_RUN} parameters"):
        ds.add_parameter(ParamSpec("one_more", bool, optional=True))
    assert (schema_size(store), row_counts(store)) == before
    assert len(ds.get_parameters()) == MAX_PARAMETERS_PER_RUN


# -- item 6: waiting for SQLite's write lock ---------------------------------------------------
HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    conn.close()
""")


class LockHolder:
    """A second process holding SQLite's write lock until released."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)


def test_writer_blocked_by_another_process_is_told_and_nothing_is_half_created(sqlite_url):
    store = qdataset.connect(sqlite_url, busy_timeout=0.5, flush_interval=3600)
    try:
        ds = DataSet("before", [ParamSpec("x", np.float64)], store=store)
        ds.add_result(x=1.0)
        ds.flush()
        runs_before = [r.id for r in store.runs()]
        ds.add_result(x=2.0)  # accepted; its flush will meet the lock
        ds.add_result(x=3.0)
        holder = LockHolder(sa.engine.make_url(sqlite_url).database)
        try:
            started = time.monotonic()
            with pytest.raises(StoreError, match="another process holds the write lock"):
                DataSet("blocked", [ParamSpec("y", np.float64)], store=store)
            assert time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(FlushError) as raised:
                ds.flush()
            assert time.monotonic() - started < 5
            cause = raised.value.__cause__
            assert isinstance(cause, StoreError)
            assert "another process holds the write lock" in str(cause)
            assert "busy_timeout" in str(cause)
            assert [r.id for r in store.runs()] == runs_before  # nothing half-created
        finally:
            holder.release()
        ds.flush()  # the kept rows are written once the lock is free
        assert [r.id for r in store.runs()] == runs_before
        with qdataset.connect(sqlite_url) as other:
            assert other.read_dataset(ds.id).get_data("x")[0].tolist() == [1.0, 2.0, 3.0]
        ds.mark_completed()
    finally:
        store.close()


@pytest.mark.parametrize("value", [0, -1.0, True, "1"])
def test_busy_timeout_must_be_a_positive_number(sqlite_url, value):
    with pytest.raises(InvalidArgumentError, match="busy_timeout"):
        qdataset.connect(sqlite_url, busy_timeout=value)
