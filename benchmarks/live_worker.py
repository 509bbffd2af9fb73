"""One live-data measurement in a fresh process: ``python -m benchmarks.live_worker MODE ...``.

Modes (each prints one ``BENCH_RESULT {json}`` line, like ``worker.py``):

``throughput URL ROWS SUBS MIN_WAIT_MS``
    ``ds.add_result(x=, y=)`` for ROWS rows then ``mark_completed``, with SUBS
    in-process subscribers whose callbacks read the new rows with their own
    ``ds.cursor(0)``, as a live plot would. Timed: ``DataSet(...)``, the
    writes and ``mark_completed``; ``store.close`` (which waits for the
    subscribers' final calls) is timed separately.
``latency URL FLUSH PERIOD_MS DURATION_S``
    in-process notification latency: one row every PERIOD_MS for DURATION_S,
    one subscriber (``min_wait=0, min_count=1``) on the same DataSet; the
    writer stamps ``time.perf_counter()`` after ``add_result`` returned, the
    callback stamps it on entry for every index below ``length`` it has not
    seen before (and after its read for rows the read returned beyond that).
``writer URL FLUSH PERIOD_MS DURATION_S READY OUT``
    the writing half of the cross-process latency: creates the run, prints
    ``RUN_ID <id>``, waits for the file READY (the subscriber is listening),
    writes like ``latency`` and saves the ``time.time()`` stamp of every row
    index to OUT (JSON list).
``subscriber URL RUN_ID READY OUT TIMEOUT_S``
    the other half: ``connect(URL).read_dataset(RUN_ID)``, a ``cursor(0)``,
    ``subscribe(min_wait=0, min_count=1)``, creates READY, waits until the
    run is completed and seen, and saves the ``time.time()`` stamp at which
    each index was first seen to OUT.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "BENCH_RESULT "
SETTLE_S = 0.3  # after the last paced row: let the timer flush before mark_completed


def _specs() -> list[Any]:
    from qdataset import ParamSpec

    return [ParamSpec("x", np.float64, role="setpoint"),
            ParamSpec("y", np.float64, depends_on=["x"])]


class Reader:
    """A subscriber callback that reads every new row through its cursor, like a live plot.

    With ``clock`` it also stamps each index the first time it sees it: on entry
    for the indices below ``length``, after the read for any the read returned
    beyond that.
    """

    def __init__(self, cursor: Any, clock: Callable[[], float] | None = None) -> None:
        self.cursor = cursor
        self.clock = clock
        self.seen_at: list[float] = []
        self.rows = 0
        self.calls = 0
        self.read_s = 0.0
        self.completed = threading.Event()

    def __call__(self, dataset: Any, length: int, state: Any) -> None:
        if self.clock is not None:
            now = self.clock()
            if length > len(self.seen_at):
                self.seen_at.extend([now] * (length - len(self.seen_at)))
        t0 = time.perf_counter()
        xs, _ys = self.cursor.read("x", "y")
        self.read_s += time.perf_counter() - t0
        if self.clock is not None and self.cursor.position > len(self.seen_at):
            # the read went past ``length`` (it flushed rows added meanwhile): seen now
            now = self.clock()
            self.seen_at.extend([now] * (self.cursor.position - len(self.seen_at)))
        self.rows += len(xs)
        self.calls += 1
        if dataset.is_marked_complete and self.cursor.position >= length:
            self.completed.set()


def throughput(url: str, rows: int, subs: int, min_wait_ms: float) -> dict[str, Any]:
    """Writer rows/s with ``subs`` in-process subscribers reading what is new."""
    import qdataset

    xs = np.linspace(0.0, 1.0, rows).tolist()
    ys = np.sin(np.linspace(0.0, 50.0, rows)).tolist()
    store = qdataset.connect(url)
    t0 = time.perf_counter()
    ds = qdataset.DataSet("live-throughput", _specs(), store=store)
    readers = [Reader(ds.cursor(0)) for _ in range(subs)]
    for reader in readers:
        ds.subscribe(reader, min_wait=min_wait_ms, min_count=1)
    for x, y in zip(xs, ys, strict=True):
        ds.add_result(x=x, y=y)
    ds.mark_completed()
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    for reader in readers:
        reader.completed.wait(60)
    store.close()
    return {
        "seconds": seconds,
        "close_s": time.perf_counter() - t1,
        "rows": rows,
        "subs": subs,
        "min_wait_ms": min_wait_ms,
        "sub_rows": [r.rows for r in readers],
        "sub_calls": [r.calls for r in readers],
        "sub_read_s": [r.read_s for r in readers],
        "sub_complete": [r.completed.is_set() for r in readers],
    }


def paced_writes(ds: Any, period_s: float, duration_s: float,
                 clock: Callable[[], float]) -> list[float]:
    """One ``add_result`` every ``period_s`` for ``duration_s``; the stamp after each."""
    count = max(1, round(duration_s / period_s))
    stamps = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * period_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        index = ds.add_result(x=float(i), y=float(i) ** 0.5)
        stamps.append(clock())
        if index != i:
            raise RuntimeError(f"add_result returned index {index}, expected {i}")
    return stamps


def latency(url: str, flush: float, period_ms: float, duration_s: float) -> dict[str, Any]:
    """Notification latency inside one process (writer and subscriber share the DataSet)."""
    import qdataset

    store = qdataset.connect(url, flush_interval=flush)
    ds = qdataset.DataSet("live-latency", _specs(), store=store)
    reader = Reader(ds.cursor(0), clock=time.perf_counter)
    ds.subscribe(reader, min_wait=0, min_count=1)
    added = paced_writes(ds, period_ms / 1000.0, duration_s, time.perf_counter)
    time.sleep(flush + SETTLE_S)  # the last rows arrive through a timer flush too
    ds.mark_completed()
    reader.completed.wait(30)
    store.close()
    return {"added": added, "seen": reader.seen_at, "calls": reader.calls,
            "rows_read": reader.rows}


def writer(url: str, flush: float, period_ms: float, duration_s: float,
           ready: str, out: str) -> dict[str, Any]:
    """Cross-process latency, writing side."""
    import qdataset

    store = qdataset.connect(url, flush_interval=flush)
    ds = qdataset.DataSet("live-latency-xproc", _specs(), store=store)
    ds.flush()
    print(f"RUN_ID {ds.id}", flush=True)
    deadline = time.monotonic() + 60
    while not Path(ready).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the subscriber process did not get ready within 60 s")
        time.sleep(0.01)
    added = paced_writes(ds, period_ms / 1000.0, duration_s, time.time)
    time.sleep(flush + SETTLE_S)
    ds.mark_completed()
    store.close()
    Path(out).write_text(json.dumps(added), encoding="utf-8")
    return {"rows": len(added)}


def subscriber(url: str, run_id: str, ready: str, out: str, timeout_s: float) -> dict[str, Any]:
    """Cross-process latency, subscribing side (a live view of another process's run)."""
    import qdataset

    store = qdataset.connect(url)
    ds = store.read_dataset(run_id)
    reader = Reader(ds.cursor(0), clock=time.time)
    ds.subscribe(reader, min_wait=0, min_count=1)
    Path(ready).write_text("ready", encoding="utf-8")
    done = reader.completed.wait(timeout_s)
    store.close()
    Path(out).write_text(json.dumps(reader.seen_at), encoding="utf-8")
    return {"completed_seen": done, "calls": reader.calls, "rows_read": reader.rows}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_worker")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("url")
    p.add_argument("rows", type=int)
    p.add_argument("subs", type=int)
    p.add_argument("min_wait_ms", type=float)
    p = sub.add_parser("latency")
    p.add_argument("url")
    p.add_argument("flush", type=float)
    p.add_argument("period_ms", type=float)
    p.add_argument("duration_s", type=float)
    p = sub.add_parser("writer")
    p.add_argument("url")
    p.add_argument("flush", type=float)
    p.add_argument("period_ms", type=float)
    p.add_argument("duration_s", type=float)
    p.add_argument("ready")
    p.add_argument("out")
    p = sub.add_parser("subscriber")
    p.add_argument("url")
    p.add_argument("run_id")
    p.add_argument("ready")
    p.add_argument("out")
    p.add_argument("timeout_s", type=float)
    ns = parser.parse_args(argv)
    args = {k: v for k, v in vars(ns).items() if k != "mode"}
    result = {"throughput": throughput, "latency": latency, "writer": writer,
              "subscriber": subscriber}[ns.mode](**args)
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
