"""Child processes for tests/test_writer_processes.py (run as ``python writer_child.py MODE ...``).

Every mode prints JSON events, one per line, on stdout (flushed), so the test
can follow it.  Rows written by a writer carry ``k`` (the index the writer
meant the row to get), ``v`` (== k) and ``src`` (which writer: 1, 2, ...), so
the stored data says which process wrote what, and where.

Writers report how many rows ``add_result`` accepted through a *counter file*:
8 bytes mapped with ``mmap`` and updated after every accepted row, so the count
survives a SIGKILL (the kernel keeps the shared page).  It lags the truth by
at most one row (a kill between ``add_result`` returning and the update).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import socket
import sqlite3
import struct
import sys
import time

import numpy as np

import qdataset
from qdataset import DataSet, ParamSpec
from qdataset.errors import QDatasetError

SPECS = [ParamSpec("k", np.float64), ParamSpec("v", np.float64), ParamSpec("src", np.float64)]


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Counter:
    def __init__(self, path: str) -> None:
        self._file = open(path, "r+b")  # noqa: SIM115 - lives as long as the process
        self._map = mmap.mmap(self._file.fileno(), 8)

    def set(self, value: int) -> None:
        self._map[0:8] = struct.pack("<q", value)


class Records(logging.Handler):
    """Keeps the qdataset logger's WARNING-and-above records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def error_fields(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc),
            "qdataset_error": isinstance(exc, QDatasetError)}


def write(url: str, counter_path: str, stop_path: str, src: float, resume: str | None,
          lease_timeout: float, complete: bool) -> None:
    """Write rows (k == v == index) until ``stop_path`` exists, or until killed,
    or until the run is refused (lease taken over): then report and close."""
    counter = Counter(counter_path)
    store = qdataset.connect(url, lease_timeout=lease_timeout)
    ds = store.resume_dataset(resume) if resume else DataSet("writer", SPECS, store=store)
    n = ds.length
    emit("started", id=ds.id, pid=os.getpid(), host=socket.gethostname(), first=n)
    try:
        while True:
            index = ds.add_result(k=float(n), v=float(n), src=src)
            if index != n:
                emit("bad_index", expected=n, got=index)
                sys.exit(3)
            n += 1
            counter.set(n)
            if n % 64 == 0:
                if os.path.exists(stop_path):
                    break
                time.sleep(0.0005)  # a measurement loop, not a pure spin
    except QDatasetError as exc:
        refused = error_fields(exc)
        accepted = ds.length
        unwritten = ds.unwritten_results()["k"]
        # Every later writing call raises too, and accepts nothing.
        try:
            ds.add_result(k=-1.0, v=-1.0, src=src)
            again = None
        except QDatasetError as exc2:
            again = error_fields(exc2)
        emit("refused", error=refused, accepted=accepted, again=again,
             length_after=ds.length, unwritten=len(unwritten),
             unwritten_first=float(unwritten[0]) if len(unwritten) else None,
             unwritten_last=float(unwritten[-1]) if len(unwritten) else None)
        try:
            store.close()
            emit("closed", error=None)
        except QDatasetError as exc3:
            emit("closed", error=error_fields(exc3))
        return
    if complete:
        ds.mark_completed()
    length = ds.length
    store.close()
    emit("done", length=length, accepted=n)


def intrude(url: str, run_id: str) -> None:
    """Open the run as a view and try every way of writing, completing or taking it."""
    store = qdataset.connect(url)
    view = store.read_dataset(run_id)
    z = ParamSpec("z", np.float64)
    attempts = {
        "add_result": lambda: view.add_result(k=-1.0, v=-1.0, src=9.0),
        "add_results": lambda: view.add_results({"k": [-1.0, -2.0], "v": [-1.0, -2.0],
                                                 "src": [9.0, 9.0]}),
        "modify_result": lambda: view.modify_result(0, v=-1.0),
        "modify_results": lambda: view.modify_results(0, [{"v": -1.0}, {"v": -2.0}]),
        "add_parameter": lambda: view.add_parameter(z),
        "add_parameters": lambda: view.add_parameters([z]),
        "add_parameter_values": lambda: view.add_parameter_values(z, [0.0] * view.length),
        "mark_completed": lambda: view.mark_completed(),
        "resume_dataset": lambda: store.resume_dataset(run_id),
    }
    results = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            results[name] = None
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[name] = error_fields(exc)
    emit("intruded", results=results, completed=view.is_marked_complete)
    store.close()


def complete_view(url: str, run_id: str) -> None:
    """Complete a run through a read-only view (its writer must be gone)."""
    store = qdataset.connect(url)
    view = store.read_dataset(run_id)
    view.mark_completed()
    emit("completed", length=view.length, completed=view.is_marked_complete)
    store.close()


def full_disk(url: str, db_path: str, how: str) -> None:
    """SQLite on a full disk, then space comes back.  ``how``: "fsize" (RLIMIT_FSIZE:
    writes past a size fail with EFBIG; lifted by raising the soft limit again) or
    "ballast:PATH" (a real ENOSPC: a file at PATH fills the small filesystem holding
    the database; deleted to free the space)."""
    import resource

    records = Records()
    logging.getLogger("qdataset").addHandler(records)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    store = qdataset.connect(url, flush_interval=0.05)
    specs = [*SPECS, ParamSpec("trace", np.float64, shape=(256,))]
    ds = DataSet("full", specs, store=store)
    trace = np.zeros(256)
    n = 0

    def add() -> None:
        nonlocal n
        trace[:] = n
        index = ds.add_result(k=float(n), v=float(n), src=1.0, trace=trace)
        assert index == n, (index, n)
        n += 1

    for _ in range(200):
        add()
    ds.flush()
    files = [db_path, db_path + "-wal", db_path + "-shm"]
    sizes = {f: os.path.getsize(f) for f in files if os.path.exists(f)}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    ballast = how.split(":", 1)[1] if how.startswith("ballast:") else None
    if ballast is None:
        limit = max(sizes.values()) + 128 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    else:
        stat = os.statvfs(db_path)
        limit = max(0, stat.f_bavail * stat.f_frsize - 128 * 1024)  # leave 128 KiB
        with open(ballast, "wb") as f:
            f.write(b"\0" * limit)
    emit("limited", limit=limit, sizes=sizes, stored=n)

    raised: list[dict] = []
    told_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            add()
        except QDatasetError as exc:
            raised.append({**error_fields(exc), "at": n})
            if len(raised) > 3:
                break
            continue
        if told_at is None and (records.records or raised):
            told_at = n
        if told_at is not None and n >= told_at + 300:
            break
        if n % 16 == 0:
            time.sleep(0.001)
    accepted = n
    unwritten = len(ds.unwritten_results()["k"])
    raw = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        stored_while_full = raw.execute("SELECT length FROM runs WHERE run_id = ?",
                                        (ds.id,)).fetchone()[0]
    finally:
        raw.close()
    warnings = [{"level": r.levelname, "message": r.getMessage(),
                 "exc": None if r.exc_info is None else
                 f"{type(r.exc_info[1]).__name__}: {r.exc_info[1]}"} for r in records.records]
    emit("full", told_at=told_at, accepted=accepted, unwritten=unwritten,
         stored_while_full=stored_while_full, raised=raised, warnings=warnings[:6],
         warning_count=len(warnings))

    if ballast is None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    else:
        os.remove(ballast)
    flush_errors = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ds.flush()
        except QDatasetError as exc:
            flush_errors.append(error_fields(exc))
            time.sleep(0.1)
            continue
        if len(ds.unwritten_results()["k"]) == 0:
            break
    after = len(ds.unwritten_results()["k"])
    try:
        ds.mark_completed()
        completed = None
    except QDatasetError as exc:
        completed = error_fields(exc)
    try:
        store.close()
        closed = None
    except QDatasetError as exc:
        closed = error_fields(exc)
    emit("lifted", unwritten_after=after, flush_errors=flush_errors[:3],
         flush_error_count=len(flush_errors), complete_error=completed, close_error=closed,
         accepted=accepted, id=ds.id)


def exit_rescue(url: str, go_path: str, first: int, more: int) -> None:
    """Accept rows whose flush cannot succeed at exit (the test takes the lease away
    after ``ready``), then exit normally without closing the store."""
    store = qdataset.connect(url, flush_interval=60, lease_timeout=600)
    ds = DataSet("exit", SPECS, store=store)
    for i in range(first):
        ds.add_result(k=float(i), v=float(i), src=1.0)
    ds.flush()
    emit("ready", id=ds.id, pid=os.getpid(), stored=first)
    deadline = time.monotonic() + 60
    while not os.path.exists(go_path):
        if time.monotonic() > deadline:
            emit("timeout")
            sys.exit(4)
        time.sleep(0.01)
    for i in range(first, first + more):
        ds.add_result(k=float(i), v=float(i), src=1.0)
    emit("accepted", length=ds.length, unwritten=len(ds.unwritten_results()["k"]))
    # no store.close(): interpreter exit must write or rescue them


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "write":
        url, counter, stop, src, resume, lease_timeout, complete = args
        write(url, counter, stop, float(src), resume or None, float(lease_timeout),
              complete == "complete")
    elif mode == "intrude":
        intrude(*args)
    elif mode == "complete":
        complete_view(*args)
    elif mode == "full_disk":
        full_disk(*args)
    elif mode == "exit_rescue":
        url, go, first, more = args
        exit_rescue(url, go, int(first), int(more))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
