"""What one ``ALTER TABLE ADD COLUMN`` costs SQLite as a store's schema grows.

    python -m benchmarks.alter_cost                  # 256 ... 8,192 columns, 5 repeats
    python -m benchmarks.alter_cost --columns 1024 4096 26624

Raw ``sqlite3`` only (no qdataset code).  Each size is a fresh database file
with qdataset's pragmas, holding a ``runs`` table and tables of 64 REAL
parameter columns in qdataset's layout (``WITHOUT ROWID``, key ``(run,
index)``), each with the completion lock's three triggers, as a store
whose runs keep inventing parameter names fills up.  It times adding one
more column to the first table, each in its own ``BEGIN IMMEDIATE`` ...
``COMMIT``, and prints the fastest of the repeats.  SQLite re-parses the whole
schema after every ``ALTER``, so the time grows with the columns and
triggers the store holds; this is why ``layouts.NAMED_COLUMNS`` stops giving
every new name its own column.  Nothing fails a build; the figures depend on
the machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks.cases_raw_layout import lock_triggers

TABLE_WIDTH = 64


def _store(path: Path, columns: int) -> sqlite3.Connection:
    """A database with ``columns`` parameter columns in tables of TABLE_WIDTH."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE runs (pk INTEGER PRIMARY KEY, completed_at REAL)")
    for t in range(max(1, columns // TABLE_WIDTH)):
        table = f"r{t}"
        params = ", ".join(f'"p{t}_{i}" REAL' for i in range(TABLE_WIDTH))
        conn.execute(f'CREATE TABLE {table} (run INTEGER NOT NULL, "index" INTEGER NOT NULL, '
                     f'{params}, PRIMARY KEY (run, "index")) WITHOUT ROWID')
        for statement in lock_triggers(table):
            conn.execute(statement)
    conn.execute("COMMIT")
    return conn


def alter_ms(columns: int, repeats: int, folder: Path) -> float:
    """Fastest of ``repeats`` single-column ALTERs in a store of ``columns`` columns."""
    conn = _store(folder / f"alter-{columns}.db", columns)
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f'ALTER TABLE r0 ADD COLUMN "added{k}" REAL')
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return min(times) * 1000


def main(argv: list[str] | None = None) -> int:
    """Print the cost of one ALTER per store size."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alter_cost")
    parser.add_argument("--columns", type=int, nargs="+", default=[256, 1024, 2048, 4096, 8192],
                        help="parameter columns in the store (in tables of 64)")
    parser.add_argument("--repeats", type=int, default=5)
    ns = parser.parse_args(argv)
    print(f"SQLite {sqlite3.sqlite_version}: one ALTER TABLE ADD COLUMN, fastest of "
          f"{ns.repeats}, tables of {TABLE_WIDTH} REAL columns with 3 lock triggers each")
    print(f"{'columns':>8}  {'tables':>6}  {'ms per ALTER':>12}")
    with tempfile.TemporaryDirectory(prefix="qd-alter-") as tmp:
        for columns in ns.columns:
            ms = alter_ms(columns, ns.repeats, Path(tmp))
            print(f"{columns:>8,}  {max(1, columns // TABLE_WIDTH):>6,}  {ms:>12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
