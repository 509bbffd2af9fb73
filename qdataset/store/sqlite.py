"""SQLite's side of the engine interface (see dialect.py).

* Results tables are ``WITHOUT ROWID``: rows are stored in primary-key order
  ``(run, index)``, so one run's rows sit together and range reads are one
  B-tree walk.
* The completion lock is three triggers per results table (SQLite triggers
  name one event each) that look the row's run up in ``runs``.  SQLite has
  only row triggers, and calling one costs about half a microsecond a row
  whatever it does, as much as the insert itself (``python -m
  benchmarks.lock_cost``).  So a big append drops the table's INSERT trigger
  inside its own transaction, after its claim (which checks the lease, the
  length and that the run is open), and creates it again, with its stored
  SQL, before the commit: no other connection can write while the
  transaction holds SQLite's write lock, and none ever sees the table without
  its lock (a failed append rolls back with the trigger in place).  The
  schema change makes every other connection re-read the schema once (about
  10 us per schema object: 18 ms in a store of 1,728 objects), so "big" means
  at least ``LIFT_LOCK_ROWS`` rows and ``LIFT_ROWS_PER_SCHEMA_OBJECT`` rows
  per object in the schema: a lift saves about 0.8 us a row, so that pays
  for a few other connections' re-reads.  The trigger also copies each new
  row, so every ``LIFT_BYTES_PER_ROW`` bytes of array, text or raw values
  count as one more row (1,000 traces of 8 kB: 10 ms saved of 64 ms).
* Writers take ``BEGIN IMMEDIATE`` (engine.py), which already serialises
  layout changes and queue claims.
* Other processes' commits show up in ``PRAGMA data_version``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .changes import ChangeFeed
from .dialect import INDEX_COLUMN, LOCK_MESSAGE, RUN_COLUMN, Dialect, rows_of

#: Rows per multi-row INSERT (a power of two), bounded by the number of parameters
#: every SQLite build accepts; below the minimum, executemany.  Preparing a
#: statement costs about 1 us per row of VALUES, once per connection, while
#: inserting costs the same per row from 256-row statements up (raw sqlite3, 4
#: floats: 0.38 us at 1,024 and at 4,096 rows; preparing 1.2 vs 4.2 ms), so
#: 1,024 rows spare a fresh writer most of that without slowing a long one.
_BATCH_ROWS = 1024
_MAX_VARIABLES = 32766
_MIN_MULTI_ROWS = 8
#: Rows with at least this many bytes of arrays, text or raw values (their mean)
#: go through executemany: a multi-row INSERT copies each value once more on its
#: way in, which outweighs the per-statement cost it saves once values are this
#: big (``python -m benchmarks.insert_shape``: executemany takes 1.1-1.5x the
#: time for rows of 64 B, about as long near 512 B, and 0.6-0.9x from 1 KiB on).
_EXECUTEMANY_ROW_BYTES = 1024

#: Appends of at least this many rows lift the INSERT lock trigger inside their own
#: transaction (see the module docstring): for fewer, the trigger's cost is smaller
#: than that of the schema change, which other connections also pay once ...
LIFT_LOCK_ROWS = 2048
#: ... and at least this many rows per object in the schema (what each other
#: connection's re-read costs grows with the schema).
LIFT_ROWS_PER_SCHEMA_OBJECT = 50
#: Bytes of array, text or raw values that count as one row for the two limits
#: above (the trigger copies the whole new row: about 1.2 ns a byte).
LIFT_BYTES_PER_ROW = 1024


class SqliteDialect(Dialect):
    name = "sqlite"
    column_types = {"f": "REAL", "i": "INTEGER", "b": "INTEGER", "U": "TEXT",
                    "bytes": "BLOB", "key": "INTEGER"}
    max_columns = 2000  # SQLITE_MAX_COLUMN of standard builds
    table_options = " WITHOUT ROWID"

    def upsert_insert(self, table: sa.Table) -> Any:
        return sqlite_dialect.insert(table)

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self._statements: dict[tuple, str] = {}

    def lock_statements(self, table: str) -> list[str]:
        quoted = self.quote(table)
        run = self.quote(RUN_COLUMN)
        # An UPDATE is checked on both sides: it may not change a completed run's rows,
        # nor move rows into one.
        return [
            f"CREATE TRIGGER {self.quote(_lock_trigger(table, op))} "
            f"BEFORE {op} ON {quoted} WHEN "
            + " OR ".join(f"(SELECT completed_at FROM runs WHERE pk = {row}.{run}) IS NOT NULL"
                          for row in rows)
            + f" BEGIN SELECT RAISE(ABORT, '{LOCK_MESSAGE}'); END"
            for op, rows in (("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"]))
        ]

    @contextmanager
    def claimed_append(self, cursor: Any, table: str, rows: int,
                       value_bytes: int = 0) -> Iterator[None]:
        """For a big append: without the INSERT lock trigger in between, and with it
        again (its stored SQL) before the caller commits."""
        rows += value_bytes // LIFT_BYTES_PER_ROW
        if rows < LIFT_LOCK_ROWS:
            yield
            return
        name = _lock_trigger(table, "INSERT")
        found = cursor.execute(
            "SELECT sql, (SELECT count(*) FROM sqlite_master) FROM sqlite_master "
            "WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
        # No such trigger (nothing to lift), or a schema too big to pay for: as it is.
        if found is None or rows < LIFT_ROWS_PER_SCHEMA_OBJECT * found[1]:
            yield
            return
        cursor.execute(f"DROP TRIGGER {self.quote(name)}")
        yield  # on an error the transaction rolls back, trigger included
        cursor.execute(found[0])

    def insert_many(self, cursor: Any, table: str, run: int, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]] | None = None, *,
                    values: Sequence[Sequence[Any]] | None = None,
                    kinds: Sequence[str | None] | None = None,
                    bytes_per_row: float = 0.0) -> None:
        """Multi-row INSERTs of power-of-two sizes (each a cached prepared statement).

        Twice as fast as ``executemany`` for rows of numbers, and the driver
        releases the GIL once per statement instead of once per row, so a flush
        can run on a background thread next to a busy measurement loop.  Rows
        carrying ``_EXECUTEMANY_ROW_BYTES`` or more go through ``executemany``.
        The run is an integer literal in the statement, so rows need no extra column.
        """
        names, width = tuple(columns), len(columns) + 1  # + the index
        if bytes_per_row >= _EXECUTEMANY_ROW_BYTES:  # big values: one-row statement, reused
            cursor.executemany(self._values_sql(table, int(run), names, 1),
                               rows_of(rows, values))
            return
        batch = _BATCH_ROWS
        while batch * width > _MAX_VARIABLES and batch > 1:
            batch //= 2
        if values is not None:
            chunks = _made_ahead(_flat_chunks(values, width, batch))
        else:
            source = iter(rows_of(rows, values))
            chunks = (list(itertools.chain.from_iterable(chunk))
                      for chunk in iter(lambda: list(itertools.islice(source, batch)), []))
        for flat in chunks:
            count, position, size = len(flat) // width, 0, batch
            while position < count:
                while size > count - position:
                    size //= 2
                if size < _MIN_MULTI_ROWS:
                    rest = flat[position * width:]
                    cursor.executemany(self._values_sql(table, int(run), names, 1),
                                       [rest[k:k + width] for k in range(0, len(rest), width)])
                    break
                cursor.execute(self._values_sql(table, int(run), names, size),
                               flat[position * width:(position + size) * width])
                position += size

    def _values_sql(self, table: str, run: int, columns: tuple[str, ...], rows: int) -> str:
        key = (table, run, columns, rows)
        sql = self._statements.get(key)
        if sql is None:
            names = ", ".join(self.quote(c) for c in (RUN_COLUMN, INDEX_COLUMN, *columns))
            one = f"({run}, {self.placeholders(len(columns) + 1)})"
            sql = f"INSERT INTO {self.quote(table)} ({names}) VALUES {', '.join([one] * rows)}"
            if len(self._statements) > 512:  # runs come and go: keep the cache bounded
                self._statements.clear()
            self._statements[key] = sql
        return sql

    def change_feed(self, storage: Any, driver: Any) -> ChangeFeed:
        return SqliteChangeFeed(storage, driver)


class SqliteChangeFeed(ChangeFeed):
    """Reads the runs table only after ``PRAGMA data_version`` moved: another
    connection committed."""

    def __init__(self, storage: Any, driver: Any) -> None:
        super().__init__(storage, driver)
        self._data_version: int | None = None

    def _candidates(self, run_keys: list[int], unseen: list[int]) -> list[int]:
        cursor = self._driver.cursor()
        try:
            version = cursor.execute("PRAGMA data_version").fetchone()[0]
        finally:
            cursor.close()
        if version == self._data_version and not unseen:
            return []
        self._data_version = version
        return run_keys


def _lock_trigger(table: str, op: str) -> str:
    """Name of the completion-lock trigger of ``table`` for ``op`` (INSERT, ...)."""
    return f"{table}_lock_{op.lower()}"


_helper: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): forks make their own
_helper_lock = threading.Lock()


def _made_ahead(chunks: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """``chunks``, each next one made on a helper thread while the caller inserts the
    current one: sqlite3 releases the GIL while SQLite inserts, so the Python work of
    building parameters (``tolist``, interleaving) runs beside it instead of after."""
    global _helper
    with _helper_lock:
        if _helper is None or _helper[0] != os.getpid():  # a fork has no pool threads
            _helper = (os.getpid(), ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="qdataset-params"))
        helper = _helper[1]
    upcoming = helper.submit(next, chunks, None)
    while True:
        chunk = upcoming.result()
        if chunk is None:
            return
        upcoming = helper.submit(next, chunks, None)
        yield chunk


def _flat_chunks(values: Sequence[Sequence[Any]], width: int, batch: int
                 ) -> Iterable[list[Any]]:
    """Statement parameters, row after row, built a column at a time: each column's
    values go into every ``width``-th slot of one list (a C-speed slice assignment)
    instead of a tuple per row."""
    total = len(values[0]) if values else 0
    for lo in range(0, total, batch):
        hi = min(lo + batch, total)
        flat: list[Any] = [None] * ((hi - lo) * width)
        for j, column in enumerate(values):
            part = column[lo:hi]
            flat[j::width] = part.tolist() if hasattr(part, "tolist") else list(part)
        yield flat
