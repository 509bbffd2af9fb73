"""A failed flush keeps the rows, in order, and the next flush writes them."""

from __future__ import annotations

import numpy as np
import pytest
from faults import failing_writes

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
        while (now := time.monotonic()) - started < 1.5:
            ds.add_result(x=float(n))
            n += 1
            if n % 1000 == 0:
                checkpoints.append((now, n))
        in_database = view.length
        # Rows accepted more than 0.5 s (five flush intervals) ago must be stored;
        # without writer-side flushing only the first ~0.1 s of rows would be.
        old_enough = max(count for t, count in checkpoints if t <= now - 0.5)
        assert in_database >= old_enough, (in_database, old_enough, n)
        stored = view.get_data("x", end=in_database)[0]  # more may have landed meanwhile
        assert stored.tolist() == [float(i) for i in range(in_database)]
