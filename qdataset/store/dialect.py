"""Everything that differs between database engines, in one place.

The rest of ``qdataset.store`` writes portable SQL and asks a :class:`Dialect`
for column types, parameter placeholders, quoting and the completion lock.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from .codec import as_list, columns_of
from .pgcopy import binary_copy_payload

#: The SQL column types per numpy kind for each engine.  Complex, array,
#: datetime and structured values are stored as raw bytes.
_COLUMN_TYPES = {
    "sqlite": {"f": "REAL", "i": "INTEGER", "u": "INTEGER", "b": "INTEGER", "U": "TEXT",
               "bytes": "BLOB", "index": "INTEGER"},
    "postgresql": {"f": "DOUBLE PRECISION", "i": "BIGINT", "u": "BIGINT", "b": "SMALLINT",
                   "U": "TEXT", "bytes": "BYTEA", "index": "BIGINT"},
}

#: Text of the SQLite completion-lock triggers' error (recognised by its result code,
#: SQLITE_CONSTRAINT_TRIGGER; see boundary.py).
LOCK_MESSAGE = "qdataset: this run is completed; its results are read-only"

#: PostgreSQL LISTEN/NOTIFY channel announcing "run <pk> changed" to other machines.
CHANGE_CHANNEL = "qdataset_runs"

#: SQLite: rows per multi-row INSERT (a power of two), bounded by the number of
#: parameters every SQLite build accepts; below the minimum, executemany.
_SQLITE_BATCH_ROWS = 4096
_SQLITE_MAX_VARIABLES = 32766
_SQLITE_MIN_MULTI_ROWS = 8

#: PostgreSQL truncates identifiers beyond this many bytes.
_MAX_IDENTIFIER_BYTES = {"sqlite": None, "postgresql": 63}


@dataclass(frozen=True)
class Dialect:
    """The engine-specific parts of the SQL qdataset emits."""

    name: str
    placeholder: str
    _preparer: sa.sql.compiler.IdentifierPreparer

    @classmethod
    def of(cls, engine: sa.Engine) -> Dialect:
        name = engine.dialect.name
        if name not in _COLUMN_TYPES:
            from ..errors import StoreError

            raise StoreError(
                f"database engine {name!r} is not supported; use SQLite or PostgreSQL"
            )
        placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        return cls(name, placeholder, engine.dialect.identifier_preparer)

    def quote(self, identifier: str) -> str:
        """Always-quoted identifier, so keywords and odd characters are safe."""
        quoted = self._preparer.quote_identifier(identifier)
        if self.placeholder == "%s":
            # psycopg reads % as a placeholder marker even inside identifiers.
            quoted = quoted.replace("%", "%%")
        return quoted

    def check_column_name(self, name: str) -> None:
        """Reject names the engine would silently truncate."""
        limit = _MAX_IDENTIFIER_BYTES[self.name]
        if limit is not None and len(name.encode()) > limit:
            from ..errors import InvalidParamSpecError

            raise InvalidParamSpecError(
                f"parameter name {name!r} is longer than {limit} bytes, the limit of "
                f"{self.name}; choose a shorter name"
            )

    def change_notice(self, run_pk: int) -> tuple[str, tuple] | None:
        """Statement (and parameters) announcing a change of run ``run_pk``, if any."""
        if self.name == "postgresql":
            return "SELECT pg_notify(%s, %s)", (CHANGE_CHANNEL, str(run_pk))
        return None

    def _quote_plain(self, identifier: str) -> str:
        """Quoted identifier for statements sent without parameters (no % doubling)."""
        return self._preparer.quote_identifier(identifier)

    def insert_many(self, cursor: Any, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]] | None = None, *,
                    values: Sequence[Sequence[Any]] | None = None,
                    kinds: Sequence[str | None] | None = None) -> None:
        """Bulk-insert ``rows`` (one value per column), or the same data given as
        column ``values``, with the engine's fastest path.

        SQLite: multi-row INSERTs (see ``_insert_sqlite``).  PostgreSQL:
        ``COPY ... FROM STDIN``, in the binary format built by numpy when every
        column is a plain number column (``kinds``: numpy kind per column, None
        for any other) without NULLs, else in the text format.
        """
        if self.name == "postgresql":
            target = f"{self._quote_plain(table)} ({self._names(columns)})"
            if kinds is not None:
                if values is None:
                    rows = list(rows or ())
                    values = columns_of(rows, len(columns))
                payload = binary_copy_payload(values, kinds)
                if payload is not None:
                    with cursor.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(payload)
                    return
            with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in _rows(rows, values):
                    copy.write_row(row)
            return
        self._insert_sqlite(cursor, table, columns, _rows(rows, values))

    def _insert_sqlite(self, cursor: Any, table: str, columns: Sequence[str],
                       rows: Iterable[Sequence[Any]]) -> None:
        """Multi-row INSERTs of power-of-two sizes (each a cached prepared statement).

        Twice as fast as ``executemany``, and the driver releases the GIL once per
        statement instead of once per row, so a flush can run on a background
        thread next to a busy measurement loop.
        """
        columns, width = tuple(columns), len(columns)
        batch = _SQLITE_BATCH_ROWS
        while batch * width > _SQLITE_MAX_VARIABLES and batch > 1:
            batch //= 2
        source = iter(rows)
        while chunk := list(itertools.islice(source, batch)):
            position, size = 0, batch
            while position < len(chunk):
                while size > len(chunk) - position:
                    size //= 2
                if size < _SQLITE_MIN_MULTI_ROWS:
                    cursor.executemany(self._values_sql(table, columns, 1), chunk[position:])
                    break
                cursor.execute(self._values_sql(table, columns, size),
                               list(itertools.chain.from_iterable(chunk[position:position + size])))
                position += size

    @functools.lru_cache(maxsize=256)  # noqa: B019 - a handful of dialects, all long-lived
    def _values_sql(self, table: str, columns: tuple[str, ...], rows: int) -> str:
        names = ", ".join(self.quote(c) for c in columns)
        values = ", ".join([f"({self.placeholders(len(columns))})"] * rows)
        return f"INSERT INTO {self.quote(table)} ({names}) VALUES {values}"

    def _names(self, columns: Sequence[str]) -> str:
        return ", ".join(self._quote_plain(c) for c in columns)

    def append_epilogue(self, runs_table: str, run_pk: int, length: int) -> str | None:
        """PostgreSQL: one statement string, sent in one round trip at the end of a
        results append, that records the run's new length, announces the change
        (NOTIFY, delivered at commit) and lets the transaction commit without
        waiting for the WAL flush (see README, "Durability").  None elsewhere."""
        if self.name != "postgresql":
            return None
        pk, length = int(run_pk), int(length)  # ints only: safe to inline
        return (f"UPDATE {self._quote_plain(runs_table)} SET length = {length} WHERE pk = {pk};"
                f" SELECT pg_notify('{CHANGE_CHANNEL}', '{pk}');"
                " SET LOCAL synchronous_commit TO OFF")

    def placeholders(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    def column_type(self, dtype: np.dtype, is_array: bool) -> str:
        """SQL type of the column holding values of ``dtype`` (``is_array``: per-row arrays)."""
        types = _COLUMN_TYPES[self.name]
        if is_array or dtype.kind not in "fiubU":
            return types["bytes"]
        return types[dtype.kind]

    def index_column_type(self) -> str:
        return _COLUMN_TYPES[self.name]["index"]

    def lock_statements(self, table: str) -> list[str]:
        """DDL that makes ``table`` reject every insert, update and delete."""
        quoted = self.quote(table)
        if self.name == "sqlite":
            return [
                f"CREATE TRIGGER IF NOT EXISTS {self.quote(table + '_locked_' + op.lower())} "
                f"BEFORE {op} ON {quoted} BEGIN SELECT RAISE(ABORT, '{LOCK_MESSAGE}'); END"
                for op in ("INSERT", "UPDATE", "DELETE")
            ]
        # PostgreSQL: the trigger function is created by the migrations.
        return [
            f"CREATE TRIGGER {self.quote(table + '_locked')} BEFORE INSERT OR UPDATE OR DELETE "
            f"OR TRUNCATE ON {quoted} FOR EACH STATEMENT EXECUTE FUNCTION qdataset_reject_write()"
        ]

    def upsert_metadata_sql(self, table: str) -> str:
        """Insert or replace one (run, tag) metadata row."""
        return (
            f"INSERT INTO {self.quote(table)} (run_pk, tag, value) "
            f"VALUES ({self.placeholders(3)}) "
            "ON CONFLICT (run_pk, tag) DO UPDATE SET value = excluded.value"
        )


def _rows(rows: Iterable[Sequence[Any]] | None,
          values: Sequence[Sequence[Any]] | None) -> Iterable[Sequence[Any]]:
    """The rows to insert, from rows or from column values (lists made in C)."""
    if rows is not None:
        return rows
    assert values is not None
    return zip(*(as_list(v) for v in values), strict=True)
