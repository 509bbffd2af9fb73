"""SIGKILL a writer process: flushed rows survive, the file is sound, the run can be completed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import qdataset

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import qdataset
    from qdataset import DataSet, ParamSpec

    store = qdataset.connect(sys.argv[1], flush_interval=0.02)
    specs = [ParamSpec("i", np.int64), ParamSpec("x", np.float64),
             ParamSpec("trace", np.float64, shape=(16,))]
    ds = DataSet("crash", specs, store=store)
    print("id", ds.id, flush=True)
    i = 0
    def row(i):
        return {"i": i, "x": i * 0.5, "trace": np.full(16, float(i))}
    for i in range(300):
        ds.add_result(row(i))
    ds.add_results({"i": np.arange(300, 400), "x": np.arange(300, 400) * 0.5,
                    "trace": np.repeat(np.arange(300.0, 400.0), 16).reshape(100, 16)})
    ds.flush()
    print("flushed", ds.length, flush=True)
    i = ds.length
    while True:  # keep writing until killed, row by row and in small batches
        ds.add_result(row(i))
        ds.add_results([row(i + 1), row(i + 2)])
        i += 3
        if i % 60 == 0:
            time.sleep(0.001)
""")


def stored_length(path, run_id: str) -> int:
    """The run's length as the file records it, read with plain sqlite3."""
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT length FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        raw.close()


@pytest.mark.slow
def test_sigkill_keeps_flushed_rows(tmp_path):
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        kind, run_id = proc.stdout.readline().split()
        assert kind == "id"
        kind, flushed = proc.stdout.readline().split()
        assert kind == "flushed", proc.stderr.read()
        flushed = int(flushed)
        # Kill mid-stream once timed flushes have written well past the explicit flush
        # (waiting on that, not on a 0.4 s sleep that on a slow machine may have seen none).
        deadline = time.monotonic() + 60
        while stored_length(path, run_id) < flushed + 300 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.01)
        assert stored_length(path, run_id) >= flushed + 300, "no timed flush happened"
        assert proc.poll() is None, proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert flushed == 400

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        table, recorded = raw.execute(
            "SELECT results_table, length FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        indices = [r[0] for r in raw.execute(f'SELECT "_qd_index" FROM "{table}" ORDER BY 1')]
    finally:
        raw.close()
    assert len(indices) >= flushed
    assert indices == list(range(len(indices)))  # no duplicates, no gaps
    assert recorded == len(indices)  # the run's length matches its rows

    with qdataset.connect(url) as store:
        incomplete = store.runs(completed=False)
        assert [r.id for r in incomplete] == [run_id]
        assert incomplete[0].length == len(indices)
        ds = store.read_dataset(run_id)
        assert not ds.is_marked_complete
        i, x, trace = ds.get_data("i", "x", "trace")
        n = len(indices)
        np.testing.assert_array_equal(i, np.arange(n))
        np.testing.assert_array_equal(x, np.arange(n) * 0.5)
        np.testing.assert_array_equal(trace, np.repeat(np.arange(float(n)), 16).reshape(n, 16))
        ds.mark_completed()
    with qdataset.connect(url) as store:
        assert [r.id for r in store.runs(completed=True)] == [run_id]
        assert store.read_dataset(run_id).length == n
