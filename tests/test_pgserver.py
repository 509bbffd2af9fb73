"""A PostgreSQL server restarted or crashed under a writing DataSet (private server).

Each test starts its own server (tests/pgserver.py): the shared test server is
never stopped.  A writer thread keeps calling ``add_result`` while the test
restarts the server; every value written is its own index, so reading the run
back shows exactly which rows were lost or stored twice.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import threading
import time

import numpy as np
import pytest
from pgserver import WAL_WRITER_DELAY_MS, PgServer, _alive, pg_server, unavailable_reason

import qdataset
from qdataset import DataSet, FlushError, ParamSpec

pytestmark = pytest.mark.slow

__all__ = ["pg_server"]  # the fixture, imported for this module's tests

FLUSH_INTERVAL = 0.05
#: How long a test waits for something that should happen in well under a second.
DEADLINE_S = 30.0


class Writer(threading.Thread):
    """Calls ``ds.add_result(i=k)`` for k = 0, 1, ... until stopped.

    A FlushError from ``add_result`` (a busy loop writes its own overdue buffer, and
    the server is down) does not refuse the row: it was accepted and is kept, so the
    writer counts it and goes on.  Any other error ends the thread and is kept.
    """

    def __init__(self, ds: DataSet) -> None:
        super().__init__(name="test-writer", daemon=True)
        self.ds = ds
        self.accepted = 0
        self.accepted_at: list[float] = []  # monotonic time each row was accepted
        self.flush_errors: list[str] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    self.ds.add_result(i=self.accepted)
                except FlushError as exc:
                    self.flush_errors.append(str(exc))
                    if self.ds.length != self.accepted + 1:
                        raise  # the row was refused after all: that is a failure
                self.accepted_at.append(time.monotonic())
                self.accepted += 1
                time.sleep(0.001)  # a measurement loop, not a bulk load
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(DEADLINE_S)
        assert not self.is_alive(), "the writer thread did not stop"


def wait_for(condition, what: str, deadline: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline} s waiting for {what}")
        time.sleep(0.02)


def stored_length(url: str, run_id: str) -> int:
    """The run's length as another connection sees it (0 while the server is down)."""
    try:
        with qdataset.connect(url, create=False) as other:
            return other.read_dataset(run_id).length
    except qdataset.StoreError:
        return 0


def read_back(url: str, run_id: str) -> tuple[int, np.ndarray, bool]:
    """(length, the stored values of ``i``, completed) through a fresh connection."""
    with qdataset.connect(url, create=False) as other:
        view = other.read_dataset(run_id)
        (values,) = view.get_data("i")
        return view.length, values, view.is_marked_complete


def run_writer_through(server: PgServer, mode: str, caplog) -> dict:
    """Write rows while the server is stopped in ``mode`` ("fast", "immediate", or
    "kill": SIGKILL to every server process) and started again; returns the
    accounting of what was accepted and what is stored."""
    url = server.url("qdataset")
    caplog.set_level(logging.WARNING, logger="qdataset")
    store = qdataset.connect(url, flush_interval=FLUSH_INTERVAL)
    writer = None
    try:
        ds = DataSet("restart", [ParamSpec("i", np.int64)], store=store)
        writer = Writer(ds)
        writer.start()
        # Rows flowing and some of them stored before the fault.
        wait_for(lambda: stored_length(url, ds.id) >= 200 or writer.error is not None,
                 "the first 200 rows to be stored")
        fault_at = time.monotonic()
        accepted_before = writer.accepted
        if mode == "kill":
            server.kill()
            server.start()
        else:
            server.restart(mode)
        # The writer reconnects by itself: rows accepted after the restart get stored.
        back_up = writer.accepted
        wait_for(lambda: stored_length(url, ds.id) >= back_up + 200 or writer.error is not None,
                 "200 rows accepted after the restart to be stored")
        writer.stop()
        assert writer.error is None, f"the writer failed: {writer.error!r}"
        ds.mark_completed()
        length, values, completed = read_back(url, ds.id)
    finally:
        if writer is not None and writer.is_alive():
            writer.stop()
        with contextlib.suppress(Exception):
            store.close()
    accepted = writer.accepted
    present = np.zeros(accepted, dtype=np.int64)
    np.add.at(present, values[(values >= 0) & (values < accepted)], 1)
    lost = np.flatnonzero(present == 0)
    return {
        "accepted": accepted, "accepted_before_fault": accepted_before,
        "length": length, "stored": len(values), "completed": completed,
        "duplicates": int((present > 1).sum()), "unexpected": int(((values < 0)
                                                                   | (values >= accepted)).sum()),
        "lost": lost, "values": values, "fault_at": fault_at,
        "accepted_at": np.array(writer.accepted_at),
        "flush_errors": len(writer.flush_errors),
        "warnings": [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING],
    }


def describe(result: dict) -> str:
    return (f"accepted {result['accepted']} rows ({result['accepted_before_fault']} before the "
            f"fault), stored {result['stored']} (length {result['length']}), lost "
            f"{len(result['lost'])}, duplicates {result['duplicates']}, FlushErrors from "
            f"add_result {result['flush_errors']}, {len(result['warnings'])} warnings: "
            + "; ".join(w[:90] for w in result["warnings"]))


# -- the fixture itself -----------------------------------------------------------------

def test_private_server_restarts_and_recovers_from_a_kill(pg_server):
    import psycopg

    assert pg_server.port != 5432
    url = pg_server.url("fixture")
    assert url.startswith("postgresql+psycopg://") and f":{pg_server.port}/fixture" in url
    params = dict(host="127.0.0.1", port=pg_server.port, user=pg_server.user,
                  dbname="fixture", autocommit=True)
    with psycopg.connect(**params) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)  # crashes are real
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")
    pg_server.restart("fast")
    with psycopg.connect(**params) as conn:
        conn.execute("INSERT INTO t VALUES (2)")  # committed synchronously: survives a crash
    pid = pg_server.postmaster_pid()
    pg_server.kill()
    assert not _alive(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**params, connect_timeout=2)
    pg_server.start()
    pg_server.restart("immediate")
    with psycopg.connect(**params) as conn:
        assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,)]


def test_cleanup_stops_the_server_and_removes_its_directory_when_the_test_fails():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pytest.raises(RuntimeError, match="the test failed"):
        with PgServer() as server:
            server.url("x")
            pid, root = server.postmaster_pid(), server.root
            raise RuntimeError("the test failed")
    assert not root.exists()
    wait_for(lambda: not _alive(pid), "the postmaster to exit")


def test_a_killed_server_loses_only_its_last_asynchronous_commits(pg_server):
    """What PostgreSQL itself loses, without qdataset: commits acknowledged with
    synchronous_commit=off just before a SIGKILL may be gone after recovery; they
    are always the last ones, never earlier ones, and never a gap."""
    import psycopg

    params = dict(host="127.0.0.1", port=pg_server.port, user=pg_server.user,
                  dbname="postgres")
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("CREATE TABLE acked (i int PRIMARY KEY)")
    acked_at: list[float] = []
    started, failed = threading.Event(), threading.Event()

    def commit_forever() -> None:
        try:
            with psycopg.connect(**params) as conn:
                conn.execute("SET synchronous_commit = off")
                while True:
                    conn.execute("INSERT INTO acked VALUES (%s)", (len(acked_at),))
                    conn.commit()
                    acked_at.append(time.monotonic())
                    if len(acked_at) == 500:
                        started.set()
        except psycopg.Error:
            failed.set()  # the server died under it

    thread = threading.Thread(target=commit_forever, daemon=True)
    thread.start()
    assert started.wait(DEADLINE_S), "no commits"
    killed_at = time.monotonic()
    pg_server.kill()
    assert failed.wait(DEADLINE_S)
    thread.join(DEADLINE_S)
    pg_server.start()
    with psycopg.connect(**params) as conn:
        stored = [row[0] for row in conn.execute("SELECT i FROM acked ORDER BY i")]
    acked = len(acked_at)
    print(f"async commits: {acked} acknowledged, {len(stored)} after recovery, "
          f"{acked - len(stored)} lost")
    assert stored == list(range(len(stored)))  # a prefix: only the last commits can go
    assert len(stored) <= acked
    if len(stored) < acked:
        window = 3 * WAL_WRITER_DELAY_MS / 1000 + 1.0
        assert acked_at[len(stored)] >= killed_at - window


# -- qdataset under a restarted server ---------------------------------------------------

def test_writer_survives_a_fast_restart_with_every_row_once(pg_server, caplog):
    """``pg_ctl restart -m fast`` while rows are written: the flusher reconnects,
    mark_completed works, and every accepted row is stored exactly once, in order."""
    result = run_writer_through(pg_server, "fast", caplog)
    print("fast restart:", describe(result))
    assert result["completed"]
    assert result["duplicates"] == 0 and result["unexpected"] == 0, describe(result)
    assert len(result["lost"]) == 0, describe(result)
    assert result["length"] == result["accepted"] == result["stored"]
    np.testing.assert_array_equal(result["values"], np.arange(result["accepted"]))


#: Whether this tree tells transient failures apart (issue 13 item 3, in progress).
_NO_TRANSIENT_FAILURES = not hasattr(importlib.import_module("qdataset.store.boundary"),
                                     "is_transient")


@pytest.mark.xfail(_NO_TRANSIENT_FAILURES, strict=False, reason=(
    "add_result raises FlushError ('cannot use the database ... connection failed ... the "
    "database system is shutting down') while the server is down: WriteBuffer.append_one "
    "writes an overdue buffer itself and lets the failure out although the row was "
    "accepted; issue 13 item 3 wants transient failures retried in the background and "
    "reported as a WARNING"))
def test_add_result_is_not_interrupted_by_a_restarting_server(pg_server, caplog):
    """A transient outage is the flusher's business: the measurement loop is told by a
    WARNING on the qdataset logger, not by exceptions for rows that were accepted."""
    result = run_writer_through(pg_server, "fast", caplog)
    print("fast restart, add_result errors:", describe(result))
    assert result["warnings"], "the outage was not reported"
    assert result["flush_errors"] == 0, describe(result)


#: Whether this tree has the writer's recovery from a crashed server (rows of the last
#: asynchronous commits kept in memory and written again; issue 13, in progress).
_NO_CRASH_RECOVERY = importlib.util.find_spec("qdataset.store.writers") is None


@pytest.mark.xfail(_NO_CRASH_RECOVERY, strict=False, reason=(
    "without the writer keeping recently flushed rows (qdataset/store/writers.py), a "
    "crashed server loses the last asynchronous commits (measured: 83 and 90 rows) and "
    "reading the run then fails: StoreError 'expected 697 results from index 0, found "
    "614; the run's rows were changed outside qdataset'"))
@pytest.mark.parametrize("mode", ["immediate", "kill"])
def test_crashed_server_loses_at_most_the_async_commit_window(pg_server, caplog, mode):
    """``pg_ctl stop -m immediate``, or SIGKILL to every server process, while rows
    are written (a crash, recovered at the next start): flushes commit
    with synchronous_commit=off, so the last transactions before the crash may be
    lost (PostgreSQL writes them to disk within 3 x wal_writer_delay), nothing else;
    rows flushed after the restart are stored once, and nothing is duplicated."""
    result = run_writer_through(pg_server, mode, caplog)
    print(f"{mode} (crash) restart:", describe(result))
    assert result["completed"]
    assert result["duplicates"] == 0 and result["unexpected"] == 0, describe(result)
    lost = result["lost"]
    if len(lost):
        # One block: the last transactions committed before the crash.
        assert lost[-1] - lost[0] + 1 == len(lost), describe(result)
        # Accepted shortly before the crash: the WAL writer's window plus the flush
        # that took them there (generous slack for a loaded machine).
        window = 3 * WAL_WRITER_DELAY_MS / 1000 + 10 * FLUSH_INTERVAL + 1.0
        oldest = result["accepted_at"][lost[0]]
        assert oldest >= result["fault_at"] - window, (
            f"{describe(result)}; the oldest lost row was accepted "
            f"{result['fault_at'] - oldest:.2f} s before the crash, more than {window:.2f} s")
