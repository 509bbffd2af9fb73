"""A failed flush keeps the rows, in order, and the next flush writes them."""

from __future__ import annotations

import numpy as np
import pytest
from faults import failing_write_number, failing_writes

from qdataset import DataSet, FlushError, ParamSpec, StoreError


def test_failed_flush_keeps_rows_for_the_next_flush(store):
    ds = DataSet("flaky disk", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=0.0)
    ds.flush()
    for i in range(1, 4):
        ds.add_result(x=float(i))
    with failing_writes(store, 1) as faults:
        with pytest.raises(FlushError, match="kept in memory") as raised:
            ds.flush()
    assert faults.raised == 1
    assert isinstance(raised.value.__cause__, StoreError)  # translated, not a raw driver error
    ds.add_result(x=4.0)  # accepted meanwhile: must land after the kept rows
    assert ds.length == 5
    assert ds.get_data("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # the read flushes
    view = store.read_dataset(ds.id)  # and they are really in the database
    assert view.get_data("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_failed_background_flush_is_retried(store_url):
    import time

    import qdataset

    store = qdataset.connect(store_url, flush_interval=0.05)
    try:
        ds = DataSet("retry", [ParamSpec("x", np.float64)], store=store)
        view = store.read_dataset(ds.id)
        with failing_writes(store, 1, "server briefly unreachable (simulated)") as faults:
            ds.add_result(x=7.0)  # then nothing: only the flusher's retry can store it
            deadline = time.monotonic() + 10
            while view.length < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert faults.raised == 1  # the first background flush really failed
        assert view.get_data("x")[0].tolist() == [7.0]
    finally:
        store.close()


def test_a_writer_whose_flusher_thread_cannot_run_flushes_itself(store_url):
    """A loop that starves the flusher thread (of the GIL, or, here, because that
    thread is stuck writing another run) still gets its rows stored: once the oldest
    waited WRITER_FLUSH_AFTER flush delays, add_result writes the buffer itself."""
    import threading
    import time

    import sqlalchemy as sa

    import qdataset

    with qdataset.connect(store_url, flush_interval=0.05) as store:
        ds = DataSet("busy", [ParamSpec("x", np.float64)], store=store)
        other = DataSet("other", [ParamSpec("x", np.float64)], store=store)
        view = store.read_dataset(ds.id)  # reads the database only: it never flushes
        stuck, release = threading.Event(), threading.Event()

        def hold_the_flusher(*args):  # before it has a connection: it holds no lock
            if threading.current_thread().name == "qdataset-flusher" and not stuck.is_set():
                stuck.set()
                release.wait(60)

        # Never removed: removing a listener while another thread runs it is unsafe;
        # after the test it does nothing.
        sa.event.listen(store.engine.pool, "checkout", hold_the_flusher)
        try:
            other.add_result(x=1.0)  # the flusher thread takes this flush and hangs in it
            assert stuck.wait(30), "the flusher never started"
            n, deadline = 0, time.monotonic() + 30
            while view.length == 0 and time.monotonic() < deadline:
                ds.add_result(x=float(n))
                n += 1
                time.sleep(0.005)
            assert view.length > 0, "rows waited for a flusher thread that could not run"
            assert stuck.is_set() and not release.is_set()  # the flusher was still stuck
        finally:
            release.set()
        stored = view.get_data("x")[0]
        assert stored.tolist() == [float(i) for i in range(len(stored))]


def test_failure_log_reports_once_then_at_most_once_a_minute(caplog):
    """A flush that keeps failing is reported on the first failure, then at most once a
    minute (with the attempt count), and once more when it works again; retries back
    off from the flush interval to MAX_RETRY_DELAY."""
    import logging

    from qdataset.store.flusher import MAX_RETRY_DELAY, REPORT_EVERY, FailureLog

    now = [0.0]
    failures = FailureLog(clock=lambda: now[0])
    buffer = object()
    error = FlushError("could not write (simulated)")
    delays = []
    with caplog.at_level(logging.WARNING, logger="qdataset"):
        for _ in range(200):  # 200 attempts within 59 s
            delays.append(failures.failed(buffer, error, 0.1))
            now[0] += 59.0 / 200
        assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
        now[0] = REPORT_EVERY + 1.0
        failures.failed(buffer, error, 0.1)
        assert len(caplog.records) == 2 and "201 attempts" in caplog.records[1].getMessage()
        failures.succeeded(buffer)
        assert len(caplog.records) == 3 and "succeeded" in caplog.records[2].getMessage()
        failures.succeeded(buffer)  # nothing to report: no failures since
        assert len(caplog.records) == 3
    assert delays[:3] == [0.1, 0.2, 0.4] and max(delays) == MAX_RETRY_DELAY


def test_background_flush_failing_several_times_logs_twice_and_stores_the_rows(
        store_url, caplog):
    import logging
    import time

    import qdataset

    store = qdataset.connect(store_url, flush_interval=0.02)
    try:
        ds = DataSet("flaky", [ParamSpec("x", np.float64)], store=store)
        view = store.read_dataset(ds.id)
        with caplog.at_level(logging.WARNING, logger="qdataset"), \
                failing_writes(store, 5, "server briefly unreachable (simulated)") as faults:
            ds.add_result(x=1.0)  # then nothing: only the flusher's retries can store it
            deadline = time.monotonic() + 20
            while view.length < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert faults.raised == 5
        assert view.get_data("x")[0].tolist() == [1.0]
        deadline = time.monotonic() + 5  # the success report follows the commit
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        messages = [r.getMessage() for r in caplog.records if r.name == "qdataset"]
        assert len(messages) == 2, messages  # the first failure and the recovery, not 5
        assert "failed" in messages[0] and "after 5 failed attempts" in messages[1]
    finally:
        store.close()


def test_a_backlog_is_written_in_batches_and_a_failed_batch_keeps_only_the_rest(
        store_url, monkeypatch):
    import qdataset
    import qdataset.writebuffer

    monkeypatch.setattr(qdataset.writebuffer, "FLUSH_BATCH_ROWS", 3)
    with qdataset.connect(store_url, flush_interval=60) as store:
        ds = DataSet("backlog", [ParamSpec("x", np.float64)], store=store)
        for i in range(7):
            ds.add_result(x=float(i))
        with failing_write_number(store, 2), \
                pytest.raises(FlushError, match="could not write 4 results"):
            ds.flush()
        view = store.read_dataset(ds.id)
        assert view.get_data("x")[0].tolist() == [0.0, 1.0, 2.0]  # the first batch is in
        assert ds.unwritten_results()["x"].tolist() == [3.0, 4.0, 5.0, 6.0]
        ds.flush()
        assert view.get_data("x")[0].tolist() == [float(i) for i in range(7)]
