"""The engine interface: what each database engine does its own way.

In the manner of xarray's backends, every engine implements one small
interface in a module of its own (``sqlite.py``, ``postgresql.py``):

* column types, and the limits a run must respect (checked before anything is created);
* the results-table DDL and its completion lock;
* the fastest bulk insert (SQLite multi-row INSERTs, PostgreSQL binary COPY);
* announcing changes and detecting other processes' changes (``change_feed``);
* serialising layout changes and queue claims between writers.

:meth:`Dialect.of` is the only place that looks at the engine's name; the rest
of the storage package writes portable SQL and calls these methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from ..errors import StorageLimitError, StoreError
from .codec import as_list

if TYPE_CHECKING:
    from ..paramspec import ParamSpec
    from .changes import ChangeFeed
    from .runs import RunStorage

#: Text of the completion lock's error (recognised by error code, never by this text;
#: see boundary.py).
LOCK_MESSAGE = "qdataset: this run is completed; its results are read-only"

#: PostgreSQL LISTEN/NOTIFY channel announcing "run <pk> changed" to other machines.
CHANGE_CHANNEL = "qdataset_runs"

#: Most parameters one run may have, on every engine (PostgreSQL's 1,600 columns per
#: table less the two key columns; SQLite could hold 1,998, but runs must be copyable
#: between engines).  PostgreSQL also checks that a result fits one row.
MAX_PARAMETERS_PER_RUN = 1598

#: The two key columns of every results table: the run and the row index.  Parameter
#: names starting with RESERVED_PREFIX are refused, so they never collide.
RESERVED_PREFIX = "_qd_"
RUN_COLUMN = RESERVED_PREFIX + "run"
INDEX_COLUMN = RESERVED_PREFIX + "index"


def storage_of(spec: ParamSpec) -> str:
    """How values of ``spec`` are stored: 'f', 'i', 'b', 'U' (native columns) or
    'bytes' (raw bytes: complex, arrays, datetimes, records, bytes)."""
    kind = spec.type.kind
    if spec.is_array or kind not in "fiubU":
        return "bytes"
    return "i" if kind == "u" else kind


class Dialect:
    """One engine's part of the SQL qdataset emits.  Get it with :meth:`of`."""

    #: Engine name as SQLAlchemy reports it; set by each engine module.
    name: ClassVar[str]
    #: SQL type per storage token (see :func:`storage_of`), and for the key columns.
    column_types: ClassVar[dict[str, str]]
    #: Most columns one table may have, the key columns included.
    max_columns: ClassVar[int]
    #: Longest identifier in bytes (None: no limit that matters).
    max_identifier_bytes: ClassVar[int | None] = None
    #: Whether row appends commit without waiting for the disk (``claim_append``), so
    #: a crashed server may lose the last fraction of a second of them.
    async_commit_appends: ClassVar[bool] = False

    _engines: ClassVar[dict[str, type[Dialect]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Dialect._engines[cls.name] = cls

    def __init__(self, engine: sa.Engine) -> None:
        self.placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._preparer = engine.dialect.identifier_preparer

    @staticmethod
    def of(engine: sa.Engine) -> Dialect:
        """The dialect of ``engine`` (StoreError for engines qdataset does not support)."""
        from . import postgresql, sqlite  # noqa: F401 - each registers its Dialect

        cls = Dialect._engines.get(engine.dialect.name)
        if cls is None:
            raise StoreError(
                f"database engine {engine.dialect.name!r} is not supported; "
                "use SQLite or PostgreSQL"
            )
        return cls(engine)

    # -- names ---------------------------------------------------------------------------
    def quote(self, identifier: str) -> str:
        """Always-quoted identifier, so keywords and odd characters are safe."""
        return self._preparer.quote_identifier(identifier)

    def placeholders(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    # -- layout and limits ---------------------------------------------------------------
    def column_type(self, storage: str) -> str:
        return self.column_types[storage]

    def check_run_layout(self, specs: Sequence[ParamSpec], run_id: str) -> None:
        """Refuse, before anything is created, a run this engine could not store."""
        limit = min(MAX_PARAMETERS_PER_RUN, self.max_columns - 2)
        if len(specs) > limit:
            raise StorageLimitError(
                f"run {run_id!r} would have {len(specs)} parameters; a run holds at most "
                f"{limit} parameters (on every engine). Use fewer parameters: split the "
                "measurement into several runs, or store related values as one array parameter "
                "(ParamSpec(shape=...))"
            )

    def create_table_sql(self, table: str, columns: Sequence[tuple[str, str]]) -> str:
        """DDL of a results table: the key columns, then ``(name, storage)`` columns."""
        body = [f"{self.quote(RUN_COLUMN)} {self.column_types['key']} NOT NULL",
                f"{self.quote(INDEX_COLUMN)} {self.column_types['key']} NOT NULL"]
        body += [f"{self.quote(name)} {self.column_type(storage)}" for name, storage in columns]
        body.append(f"PRIMARY KEY ({self.quote(RUN_COLUMN)}, {self.quote(INDEX_COLUMN)})")
        return f"CREATE TABLE {self.quote(table)} ({', '.join(body)}){self.table_options}"

    #: Appended to CREATE TABLE of a results table.
    table_options: ClassVar[str] = ""

    def add_column_sql(self, table: str, name: str, storage: str) -> str:
        return (f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.quote(name)} "
                f"{self.column_type(storage)}")

    def lock_statements(self, table: str) -> list[str]:
        """DDL making ``table`` reject every change to rows of completed runs."""
        raise NotImplementedError

    @contextmanager
    def upgrade_lock(self, engine: sa.Engine) -> Iterator[None]:
        """Serialise schema upgrades between processes that open an old store at
        once (SQLite: nothing to do here; its write lock orders them and the
        upgrade re-checks the revision)."""
        yield

    def lock_layouts(self, conn: sa.Connection) -> None:
        """Serialise layout changes (new tables, columns) between writers, for the
        rest of the transaction."""

    def lock_for_claim(self, query: sa.Select) -> sa.Select:
        """``query`` selecting a queue row to claim, locked against other claimers."""
        return query

    # -- writing ---------------------------------------------------------------------------
    def insert_many(self, cursor: Any, table: str, run: int, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]] | None = None, *,
                    values: Sequence[Sequence[Any]] | None = None,
                    kinds: Sequence[str | None] | None = None,
                    bytes_per_row: float = 0.0) -> None:
        """Insert results of run ``run``: ``rows`` of ``[index, value, ...]`` (one
        value per column after the index), or the same data as column ``values``.
        ``kinds``: numpy kind per column (None where not a plain number);
        ``bytes_per_row``: the rows' mean bytes of array, text and raw values (an
        engine may choose its statements by it)."""
        raise NotImplementedError

    def claim_append(self, cursor: Any, runs_table: str, run_pk: int, token: str,
                     first: int, new_length: int, *, async_commit: bool) -> bool:
        """Set run ``run_pk``'s length to ``new_length`` if it is ``first``, the run
        is not completed and its writer token is ``token``; True if it was.  Runs
        before the rows of an append are inserted, in their transaction.
        ``async_commit``: the transaction may commit without waiting for the disk
        (where the engine can)."""
        cursor.execute(
            f"UPDATE {self.quote(runs_table)} SET length = {int(new_length)} "
            f"WHERE pk = {int(run_pk)} AND writer_token = '{hex_token(token)}' "
            f"AND length = {int(first)} AND completed_at IS NULL")
        return cursor.rowcount == 1

    @contextmanager
    def claimed_append(self, cursor: Any, table: str, rows: int,
                       value_bytes: int = 0) -> Iterator[None]:
        """Around the inserts of an append of ``rows`` rows into ``table`` (holding
        ``value_bytes`` bytes of array, text and raw values), after its
        :meth:`claim_append` succeeded, in the same transaction (see SQLite's)."""
        yield

    def change_notice(self, run_pk: int) -> tuple[str, tuple] | None:
        """Statement (and parameters) announcing a change of run ``run_pk``, if any."""
        return None

    def upsert_insert(self, table: sa.Table) -> Any:
        """An INSERT construct of ``table`` that takes ``on_conflict_do_update`` /
        ``on_conflict_do_nothing`` (the same SQL on both engines)."""
        raise NotImplementedError

    def upsert_metadata_sql(self, table: str) -> str:
        """Insert or replace one (run, tag) metadata row."""
        return (
            f"INSERT INTO {self.quote(table)} (run_pk, tag, value) "
            f"VALUES ({self.placeholders(3)}) "
            "ON CONFLICT (run_pk, tag) DO UPDATE SET value = excluded.value"
        )

    # -- other processes -------------------------------------------------------------------
    def change_feed(self, storage: RunStorage, driver: Any) -> ChangeFeed:
        """A feed of runs changed by others, on a dedicated driver connection."""
        raise NotImplementedError


def rows_of(rows: Iterable[Sequence[Any]] | None,
            values: Sequence[Sequence[Any]] | None) -> Iterable[Sequence[Any]]:
    """The rows to insert, from rows or from column values (lists made in C)."""
    if rows is not None:
        return rows
    assert values is not None
    return zip(*(as_list(v) for v in values), strict=True)


def hex_token(token: str) -> str:
    """``token``, checked to be hex digits only, so it is safe to inline in SQL."""
    if not token or any(c not in "0123456789abcdef" for c in token):
        raise ValueError(f"not a lease token: {token!r}")
    return token
