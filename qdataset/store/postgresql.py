"""PostgreSQL's side of the engine interface (see dialect.py).

* Results are written with ``COPY FROM STDIN``: in the binary format, built by
  numpy a whole column at a time (pgcopy.py), when every column is a plain
  number without NULLs; in the text format otherwise.  The new length (checked
  against the writer's lease), the change notice and the commit mode go in one
  round trip before the rows.
* The completion lock is one statement-level trigger per event and results
  table, sharing one function (migration 0005) that joins the statement's
  transition table to ``runs``: a cost per statement, not per row.
* Other machines learn about changes through ``LISTEN/NOTIFY``.
* Layout changes take a transaction-level advisory lock; queue claims use
  ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dialect

from ..errors import StorageLimitError
from ..paramspec import ParamSpec
from .changes import ChangeFeed
from .codec import columns_of
from .dialect import (
    CHANGE_CHANNEL,
    INDEX_COLUMN,
    RUN_COLUMN,
    Dialect,
    hex_token,
    rows_of,
    storage_of,
)
from .pgcopy import binary_copy_payload

#: PostgreSQL's largest row: a heap tuple must fit one 8 kB page.
MAX_ROW_BYTES = 8160
#: Bytes per stored value: fixed-width types, and a TOAST pointer (the least a
#: text or bytea value can take once PostgreSQL moves it out of the row).
_VALUE_BYTES = {"f": 8, "i": 8, "b": 2, "U": 18, "bytes": 18}
#: Heap tuple header (before its NULL bitmap) and the two key columns.
_TUPLE_HEADER = 23
_KEY_BYTES = 16

#: Key of the advisory lock that serialises layout changes (an arbitrary constant).
_LAYOUT_LOCK = 0x71645F6C61796F75
#: Key of the session advisory lock held while a process upgrades the schema.
_UPGRADE_LOCK = 0x71645F7570677264


class PostgresDialect(Dialect):
    name = "postgresql"
    column_types = {"f": "DOUBLE PRECISION", "i": "BIGINT", "b": "SMALLINT", "U": "TEXT",
                    "bytes": "BYTEA", "key": "BIGINT"}
    max_columns = 1600  # MaxHeapAttributeNumber
    max_identifier_bytes = 63  # NAMEDATALEN - 1
    async_commit_appends = True  # row appends: synchronous_commit off (claim_append)

    def upsert_insert(self, table: sa.Table) -> Any:
        return postgresql_dialect.insert(table)

    def quote(self, identifier: str) -> str:
        # psycopg reads % as a placeholder marker even inside identifiers.
        return super().quote(identifier).replace("%", "%%")

    def _quote_plain(self, identifier: str) -> str:
        """Quoted identifier for statements sent without parameters (no % doubling)."""
        return self._preparer.quote_identifier(identifier)

    def check_run_layout(self, specs: Sequence[ParamSpec], run_id: str) -> None:
        super().check_run_layout(specs, run_id)
        # Counted as if some value were missing: the NULL bitmap then takes a bit
        # per column, and the header is padded to 8 bytes.
        header = _TUPLE_HEADER + (len(specs) + 2 + 7) // 8
        size = (header + 7) // 8 * 8 + _KEY_BYTES
        size += sum(_VALUE_BYTES[storage_of(s)] for s in specs)
        if size > MAX_ROW_BYTES:
            raise StorageLimitError(
                f"a result of run {run_id!r} would take at least {size} bytes, more than the "
                f"{MAX_ROW_BYTES} of one PostgreSQL row ({len(specs)} parameters); store "
                "related values as one array parameter (ParamSpec(shape=...)) or split the run"
            )

    def lock_statements(self, table: str) -> list[str]:
        quoted = self.quote(table)
        # The UPDATE trigger names the new rows too: an update may not move rows
        # into a completed run either.
        statements = [
            f"CREATE TRIGGER {self.quote(f'{table}_lock_{op.lower()}')} AFTER {op} ON {quoted} "
            f"REFERENCING {tables} FOR EACH STATEMENT "
            "EXECUTE FUNCTION qdataset_reject_completed_rows()"
            for op, tables in (("INSERT", "NEW TABLE AS qd_changed"),
                               ("UPDATE", "OLD TABLE AS qd_changed NEW TABLE AS qd_new"),
                               ("DELETE", "OLD TABLE AS qd_changed"))
        ]
        statements.append(
            f"CREATE TRIGGER {self.quote(f'{table}_lock_truncate')} BEFORE TRUNCATE ON "
            f"{quoted} FOR EACH STATEMENT EXECUTE FUNCTION qdataset_reject_truncate()")
        return statements

    @contextmanager
    def upgrade_lock(self, engine: sa.Engine) -> Iterator[None]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_UPGRADE_LOCK})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_UPGRADE_LOCK})")

    def lock_layouts(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LAYOUT_LOCK})")

    def lock_for_claim(self, query: sa.Select) -> sa.Select:
        return query.with_for_update(skip_locked=True)

    def insert_many(self, cursor: Any, table: str, run: int, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]] | None = None, *,
                    values: Sequence[Sequence[Any]] | None = None,
                    kinds: Sequence[str | None] | None = None,
                    bytes_per_row: float = 0.0) -> None:
        names = ", ".join(self._quote_plain(c) for c in (RUN_COLUMN, INDEX_COLUMN, *columns))
        target = f"{self._quote_plain(table)} ({names})"
        if kinds is not None:
            if values is None:
                rows = list(rows or ())
                values = columns_of(rows, len(columns) + 1)
            count = len(values[0]) if values else 0
            run_column = np.full(count, int(run), dtype=np.int64)
            payload = binary_copy_payload([run_column, *values], ["i", "i", *kinds])
            if payload is not None:
                with cursor.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(payload)
                return
        run = int(run)
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows_of(rows, values):
                copy.write_row((run, *row))

    def claim_append(self, cursor: Any, runs_table: str, run_pk: int, token: str,
                     first: int, new_length: int, *, async_commit: bool) -> bool:
        """The length update, the change notice (delivered at commit) and, for
        row-by-row appends, a commit that does not wait for the WAL flush (see
        README, "Durability"), in one round trip."""
        pk = int(run_pk)
        commit_mode = (", set_config('synchronous_commit', 'off', true)"
                       if async_commit else "")
        cursor.execute(
            f"WITH claimed AS (UPDATE {self._quote_plain(runs_table)} "
            f"SET length = {int(new_length)} WHERE pk = {pk} "
            f"AND writer_token = '{hex_token(token)}' AND length = {int(first)} "
            "AND completed_at IS NULL RETURNING pk) "
            f"SELECT pg_notify('{CHANGE_CHANNEL}', '{pk}'){commit_mode} FROM claimed")
        return len(cursor.fetchall()) == 1

    def change_notice(self, run_pk: int) -> tuple[str, tuple] | None:
        return "SELECT pg_notify(%s, %s)", (CHANGE_CHANNEL, str(run_pk))

    def change_feed(self, storage: Any, driver: Any) -> ChangeFeed:
        return PostgresChangeFeed(storage, driver)


class PostgresChangeFeed(ChangeFeed):
    """LISTENs on a held connection; reads only the runs announced since."""

    def __init__(self, storage: Any, driver: Any) -> None:
        super().__init__(storage, driver)
        self._driver.autocommit = True
        self._driver.execute(f"LISTEN {CHANGE_CHANNEL}")

    def _candidates(self, run_keys: list[int], unseen: list[int]) -> list[int]:
        announced = {int(n.payload) for n in self._driver.notifies(timeout=0)}
        return [key for key in run_keys if key in announced and key not in unseen] + unseen
