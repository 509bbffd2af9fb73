"""Multi-row INSERT or executemany, by the bytes each row carries.

    python -m benchmarks.insert_shape                  # 64 B ... 8 kB blobs, 11 repeats
    python -m benchmarks.insert_shape --bytes 512 1024 --repeats 11

Raw ``sqlite3`` only (no qdataset code).  For each blob size, rows of (index,
a float, a blob) go into qdataset's table layout (``WITHOUT ROWID``, key
``(run, index)``, no trigger: big appends lift it) in one transaction, about
8 MB in all (at most 20,000 rows): once as multi-row ``INSERT ... VALUES``
statements of power-of-two sizes up to 1,024 rows, as qdataset's flusher
writes rows of numbers (flattening the rows into their parameter list on
the clock, as the flusher does), and once with one ``executemany`` of the
rows.  The transaction is rolled back, so only the inserts are timed.  It
prints the fastest microseconds per row of each and their ratio:
``_EXECUTEMANY_ROW_BYTES`` in ``qdataset/store/sqlite.py`` sits at the
crossover.  Nothing fails a build; the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TOTAL_BYTES = 8_000_000
MAX_ROWS = 20_000
BATCH = 1024
TABLE = ('CREATE TABLE r (run INTEGER NOT NULL, "index" INTEGER NOT NULL, s REAL, '
         'trace BLOB, PRIMARY KEY (run, "index")) WITHOUT ROWID')
ONE_ROW = "(5, ?, ?, ?)"
INSERT = 'INSERT INTO r (run, "index", s, trace) VALUES '


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(TABLE)
    return conn


def _multi_row(conn: sqlite3.Connection, rows: list[tuple[int, float, bytes]]) -> None:
    flat = list(itertools.chain.from_iterable(rows))
    position, size = 0, BATCH
    while position < len(rows):
        while size > len(rows) - position:
            size //= 2
        conn.execute(INSERT + ", ".join([ONE_ROW] * size),
                     flat[position * 3:(position + size) * 3])
        position += size


def _executemany(conn: sqlite3.Connection, rows: list[tuple[int, float, bytes]]) -> None:
    conn.executemany(INSERT + ONE_ROW, rows)


def _fastest(insert: Callable[[sqlite3.Connection, list[tuple[int, float, bytes]]], None],
             rows: list[tuple[int, float, bytes]], repeats: int, folder: Path) -> float:
    times = []
    for k in range(repeats):
        conn = _connect(folder / f"shape-{insert.__name__}-{len(rows[0][2])}-{k}.db")
        conn.execute("BEGIN")
        t0 = time.perf_counter()
        insert(conn, rows)
        times.append(time.perf_counter() - t0)
        conn.execute("ROLLBACK")
        conn.close()
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Print both shapes' cost per row for each blob size."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.insert_shape")
    parser.add_argument("--bytes", type=int, nargs="+", default=[64, 256, 512, 1024, 2048, 8192],
                        help="blob bytes per row")
    parser.add_argument("--repeats", type=int, default=11)
    ns = parser.parse_args(argv)
    rng = random.Random(7)
    print(f"SQLite {sqlite3.sqlite_version}: rows of (index, float, blob), fastest of "
          f"{ns.repeats}, about {TOTAL_BYTES / 1e6:.0f} MB per size")
    print(f"{'blob':>6}  {'rows':>6}  {'multi-row us/row':>16}  {'executemany us/row':>18}  "
          f"{'executemany/multi':>17}")
    with tempfile.TemporaryDirectory(prefix="qd-shape-") as tmp:
        for size in ns.bytes:
            count = min(MAX_ROWS, TOTAL_BYTES // size)
            rows = [(i, float(i), rng.randbytes(size)) for i in range(count)]
            multi = _fastest(_multi_row, rows, ns.repeats, Path(tmp))
            many = _fastest(_executemany, rows, ns.repeats, Path(tmp))
            print(f"{size:>6,}  {count:>6,}  {1e6 * multi / count:>16.2f}  "
                  f"{1e6 * many / count:>18.2f}  {many / multi:>17.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
