"""Raw sqlite3: the baseline every other implementation is compared with.

Python's own ``sqlite3`` module, WAL journal and ``synchronous=NORMAL``, one
table of REAL columns (BLOB for the traces of case C), no validation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import (
    PARAMS,
    CaseArgs,
    Measurement,
    compare_grid,
    grid_columns,
    grid_rows,
    input_mb,
    traces,
)

BATCH = 1000  # case A: rows per executemany (and per commit)
INSERT = "INSERT INTO results (x, y, a, b) VALUES (?, ?, ?, ?)"


def connect(path: str) -> sqlite3.Connection:
    """A connection with the pragmas the issue prescribes."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def create_table(conn: sqlite3.Connection, columns: str) -> None:
    """The results table of one run: an integer row index plus the given columns."""
    conn.execute(f"CREATE TABLE results (idx INTEGER PRIMARY KEY, {columns})")
    conn.commit()


def case_a(args: CaseArgs) -> dict[str, Any]:
    """Row by row: rows arrive one at a time, written 1,000 per executemany + commit."""
    rows = grid_rows(args.rows)
    conn = connect(args.path)
    m = Measurement()
    m.start()
    create_table(conn, "x REAL, y REAL, a REAL, b REAL")
    batch: list[tuple[float, float, float, float]] = []
    for x, y, a, b in rows:
        batch.append((x, y, a, b))
        if len(batch) >= BATCH:
            conn.executemany(INSERT, batch)
            conn.commit()
            batch = []
    if batch:
        conn.executemany(INSERT, batch)
    conn.commit()
    conn.close()
    m.stop()
    return m.as_dict()


def case_b(args: CaseArgs) -> dict[str, Any]:
    """Bulk: four float64 arrays written with one executemany."""
    cols = grid_columns(args.rows)
    conn = connect(args.path)
    m = Measurement()
    m.start()
    create_table(conn, "x REAL, y REAL, a REAL, b REAL")
    conn.executemany(INSERT, zip(*(cols[p].tolist() for p in PARAMS), strict=True))
    conn.commit()
    conn.close()
    m.stop()
    return {**m.as_dict(), "input_mb": input_mb(cols), "run_id": "results"}


def case_c(args: CaseArgs) -> dict[str, Any]:
    """Traces: each row a scalar setpoint and a trace stored as a bytes blob."""
    setpoints, block = traces(args.rows, args.points)
    conn = connect(args.path)
    m = Measurement()
    m.start()
    create_table(conn, "s REAL, trace BLOB")
    batch: list[tuple[float, bytes]] = []
    for s, trace in zip(setpoints, block, strict=True):
        batch.append((s, trace.tobytes()))
        if len(batch) >= BATCH:
            conn.executemany("INSERT INTO results (s, trace) VALUES (?, ?)", batch)
            conn.commit()
            batch = []
    if batch:
        conn.executemany("INSERT INTO results (s, trace) VALUES (?, ?)", batch)
    conn.commit()
    conn.close()
    m.stop()
    return {**m.as_dict(), "payload_mb": block.nbytes / 1e6}


def case_d(args: CaseArgs) -> dict[str, Any]:
    """Read case B's table back: fetchall, np.array, one contiguous array per column."""
    conn = connect(args.path)
    m = Measurement()
    m.start()
    rows = conn.execute("SELECT x, y, a, b FROM results ORDER BY idx").fetchall()
    table = np.array(rows, dtype=np.float64)
    arrays = [np.ascontiguousarray(table[:, i]) for i in range(len(PARAMS))]
    m.stop()
    conn.close()
    return {**m.as_dict(), "rows_read": len(arrays[0]), "data": compare_grid(arrays, args.rows)}


CASES: dict[str, Callable[[CaseArgs], dict[str, Any]]] = {
    "A": case_a,
    "B": case_b,
    "C": case_c,
    "D": case_d,
}
