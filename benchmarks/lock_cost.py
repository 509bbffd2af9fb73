"""What the shared-table layout costs SQLite per row, taken apart.

    python -m benchmarks.lock_cost                 # 491,520 rows x 4 floats, 5 repeats
    python -m benchmarks.lock_cost --rows 100000 --repeats 3

Raw ``sqlite3`` only (no qdataset code), each variant a fresh database file
with qdataset's pragmas (WAL, ``synchronous=NORMAL``), written the way
qdataset's flusher writes: multi-row ``INSERT ... VALUES`` statements of
1,024 rows, one transaction per 10,240 rows, parameters prepared before the
clock starts.  The variants add one thing at a time:

* ``rowid``: raw's own table (``idx INTEGER PRIMARY KEY`` and four REALs);
* ``layout``: the key ``(run, index)`` as a ``WITHOUT ROWID`` primary key;
* ``layout + WHEN 0 trigger``: plus a BEFORE INSERT trigger that never fires
  its body (the cost of calling a trigger at all);
* ``layout + lock``: plus the completion lock's INSERT trigger as qdataset
  creates it (the row's run looked up in a runs table).

It prints the median microseconds per row, the ratio to ``rowid`` and the
file size.  Nothing fails a build; the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

STATEMENT_ROWS = 1024
TRANSACTION_ROWS = 10 * STATEMENT_ROWS
RUN = 5
LOCK_WHEN = "(SELECT completed_at FROM runs WHERE pk = NEW.run) IS NOT NULL"
KEYED = ('CREATE TABLE r (run INTEGER NOT NULL, "index" INTEGER NOT NULL, '
         'x REAL, y REAL, a REAL, b REAL, PRIMARY KEY (run, "index")) WITHOUT ROWID')

#: name -> (DDL after the runs table, INSERT head, one row's VALUES group)
VARIANTS: dict[str, tuple[list[str], str, str]] = {
    "rowid": (["CREATE TABLE r (idx INTEGER PRIMARY KEY, x REAL, y REAL, a REAL, b REAL)"],
              "INSERT INTO r (idx, x, y, a, b) VALUES ", "(?, ?, ?, ?, ?)"),
    "layout": ([KEYED], 'INSERT INTO r (run, "index", x, y, a, b) VALUES ',
               f"({RUN}, ?, ?, ?, ?, ?)"),
    "layout + WHEN 0 trigger": (
        [KEYED, "CREATE TRIGGER t BEFORE INSERT ON r WHEN 0 "
                "BEGIN SELECT RAISE(ABORT, 'never'); END"],
        'INSERT INTO r (run, "index", x, y, a, b) VALUES ', f"({RUN}, ?, ?, ?, ?, ?)"),
    "layout + lock": (
        [KEYED, f"CREATE TRIGGER t BEFORE INSERT ON r WHEN {LOCK_WHEN} "
                "BEGIN SELECT RAISE(ABORT, 'the run is completed'); END"],
        'INSERT INTO r (run, "index", x, y, a, b) VALUES ', f"({RUN}, ?, ?, ?, ?, ?)"),
}


def _flat_rows(rows: int) -> list[float | int]:
    """Statement parameters: index, then four floats, row after row."""
    rng = random.Random(12)
    flat: list[float | int] = []
    for index in range(rows):
        flat += (index, rng.random(), rng.random(), rng.random(), rng.random())
    return flat


def measure(path: Path, variant: str, flat: list[float | int], rows: int) -> float:
    """Seconds to write ``rows`` rows into a fresh file laid out as ``variant``."""
    ddl, head, group = VARIANTS[variant]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE runs (pk INTEGER PRIMARY KEY, completed_at REAL)")
    conn.execute("INSERT INTO runs (pk) VALUES (?)", (RUN,))
    for statement in ddl:
        conn.execute(statement)
    sql = head + ", ".join([group] * STATEMENT_ROWS)
    width = 5
    start = time.perf_counter()
    for lo in range(0, rows, TRANSACTION_ROWS):
        conn.execute("BEGIN")
        for first in range(lo, min(rows, lo + TRANSACTION_ROWS), STATEMENT_ROWS):
            conn.execute(sql, flat[first * width:(first + STATEMENT_ROWS) * width])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Entry point: measure every variant, interleaved, and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lock_cost")
    parser.add_argument("--rows", type=int, default=480 * STATEMENT_ROWS)
    parser.add_argument("--repeats", type=int, default=5)
    ns = parser.parse_args(argv)
    rows = max(STATEMENT_ROWS, ns.rows // STATEMENT_ROWS * STATEMENT_ROWS)
    flat = _flat_rows(rows)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(ns.repeats):  # interleaved: drift hits every variant alike
            for number, name in enumerate(VARIANTS):
                path = Path(work) / f"{number}-{repeat}.db"
                times[name].append(measure(path, name, flat, rows))
                sizes[name] = path.stat().st_size / 1e6
                os.remove(path)
    base = statistics.median(times["rowid"])
    load = os.getloadavg()
    print(f"{rows:,} rows x 4 floats, median of {ns.repeats}, "
          f"load {load[0]:.2f} / {load[1]:.2f} (1 / 5 min), SQLite {sqlite3.sqlite_version}")
    print(f"{'variant':26s} {'us/row':>7s} {'x rowid':>8s} {'file MB':>8s}")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"{name:26s} {1e6 * median / rows:7.2f} {median / base:7.2f}x "
              f"{sizes[name]:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
