"""Raw sqlite3: the baseline every other implementation is compared with.

Python's own ``sqlite3`` module, WAL journal and ``synchronous=NORMAL``, one
table of REAL columns (BLOB for the traces of case C), no validation.

The same cases also run against qdataset's storage layout (``raw-layout``,
see ``cases_raw_layout.py``): the identical loops, but into a shared results
table keyed ``(run, index)`` ``WITHOUT ROWID`` with the completion-lock
triggers.  The two baselines separate what the layout costs in SQLite itself
from what qdataset's own code adds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
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

BATCH = 1000  # cases A and C: rows per executemany (and per commit)


class Table:
    """One table of a single row index plus value columns (raw sqlite3's own layout)."""

    name = "results"
    numbered = False  # rows carry their index as their first value

    def create(self, conn: sqlite3.Connection, columns: str) -> None:
        conn.execute(f"CREATE TABLE results (idx INTEGER PRIMARY KEY, {columns})")
        conn.commit()

    def insert_sql(self, names: Sequence[str]) -> str:
        return (f"INSERT INTO results ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})")

    def select_sql(self, names: Sequence[str]) -> str:
        return f"SELECT {', '.join(names)} FROM results ORDER BY idx"


def connect(path: str) -> sqlite3.Connection:
    """A connection with the pragmas the issue prescribes."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _write_batched(conn: sqlite3.Connection, sql: str, rows: Any) -> None:
    """Rows as they arrive, written BATCH per executemany + commit."""
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.executemany(sql, batch)
            conn.commit()
            batch = []
    if batch:
        conn.executemany(sql, batch)
    conn.commit()


def cases_for(table: Table) -> dict[str, Callable[[CaseArgs], dict[str, Any]]]:
    """Cases A-D writing into and reading from ``table``."""

    def case_a(args: CaseArgs) -> dict[str, Any]:
        """Row by row: rows arrive one at a time, written 1,000 per executemany + commit."""
        rows = grid_rows(args.rows)
        conn = connect(args.path)
        m = Measurement()
        m.start()
        table.create(conn, "x REAL, y REAL, a REAL, b REAL")
        sql = table.insert_sql(PARAMS)
        if table.numbered:
            _write_batched(conn, sql, ((i, x, y, a, b) for i, (x, y, a, b) in enumerate(rows)))
        else:
            _write_batched(conn, sql, ((x, y, a, b) for x, y, a, b in rows))
        conn.close()
        m.stop()
        return m.as_dict()

    def case_b(args: CaseArgs) -> dict[str, Any]:
        """Bulk: four float64 arrays written with one executemany."""
        cols = grid_columns(args.rows)
        conn = connect(args.path)
        m = Measurement()
        m.start()
        table.create(conn, "x REAL, y REAL, a REAL, b REAL")
        values = [cols[p].tolist() for p in PARAMS]
        if table.numbered:
            values.insert(0, range(args.rows))
        conn.executemany(table.insert_sql(PARAMS), zip(*values, strict=True))
        conn.commit()
        conn.close()
        m.stop()
        return {**m.as_dict(), "input_mb": input_mb(cols), "run_id": table.name}

    def case_c(args: CaseArgs) -> dict[str, Any]:
        """Traces: each row a scalar setpoint and a trace stored as a bytes blob."""
        setpoints, block = traces(args.rows, args.points)
        conn = connect(args.path)
        m = Measurement()
        m.start()
        table.create(conn, "s REAL, trace BLOB")
        sql = table.insert_sql(("s", "trace"))
        pairs = zip(setpoints, block, strict=True)
        if table.numbered:
            _write_batched(conn, sql, ((i, s, t.tobytes()) for i, (s, t) in enumerate(pairs)))
        else:
            _write_batched(conn, sql, ((s, t.tobytes()) for s, t in pairs))
        conn.close()
        m.stop()
        return {**m.as_dict(), "payload_mb": block.nbytes / 1e6}

    def case_d(args: CaseArgs) -> dict[str, Any]:
        """Read case B's table back: fetchall, np.array, one contiguous array per column."""
        conn = connect(args.path)
        m = Measurement()
        m.start()
        rows = conn.execute(table.select_sql(PARAMS)).fetchall()
        matrix = np.array(rows, dtype=np.float64)
        arrays = [np.ascontiguousarray(matrix[:, i]) for i in range(len(PARAMS))]
        m.stop()
        conn.close()
        return {**m.as_dict(), "rows_read": len(arrays[0]),
                "data": compare_grid(arrays, args.rows)}

    return {"A": case_a, "B": case_b, "C": case_c, "D": case_d}


CASES = cases_for(Table())
