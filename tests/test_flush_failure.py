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


def test_busy_writer_still_flushes_on_time(store_url):
    """A tight loop holds the GIL; the flush promise must hold anyway (the writer flushes)."""
    import time

    import qdataset

    with qdataset.connect(store_url, flush_interval=0.1) as store:
        ds = DataSet("busy", [ParamSpec("x", np.float64)], store=store)
        view = store.read_dataset(ds.id)  # reads the database only: it never flushes
        checkpoints = []  # (time, rows accepted by then)
        started = time.monotonic()
        n = 0
        while (now := time.monotonic()) - started < 2.5:
            ds.add_result(x=float(n))
            n += 1
            if n % 1000 == 0:
                checkpoints.append((now, n))
        in_database = view.length
        # Rows accepted more than 1 s (ten flush intervals) ago must be stored; without
        # writer-side flushing only the first ~0.1 s of rows would be.  (The margin is
        # wide on purpose: on a loaded 2-core CI machine a flush can lag ~0.7 s.)
        old_enough = max(count for t, count in checkpoints if t <= now - 1.0)
        assert in_database >= old_enough, (in_database, old_enough, n)
        stored = view.get_data("x", end=in_database)[0]  # more may have landed meanwhile
        assert stored.tolist() == [float(i) for i in range(in_database)]


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
