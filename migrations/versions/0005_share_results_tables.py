"""Share results tables between runs of one layout (storage model v2).

Before: every run had a results table of its own, ``results_<pk>``, with the
primary key ``_qd_index`` and one column per parameter (named like the
parameter), locked by per-table triggers once the run was completed.

After: runs with the same layout (the same set of (casefolded parameter name,
storage type)) share one table ``results_l<k>`` with the key
``(_qd_run, _qd_index)``.  ``results_tables`` and ``results_columns`` register
the shared tables and their columns, ``run_params.column_name`` names each
parameter's column and ``runs.results_table`` the run's shared table.  The
completion lock is one set of triggers per shared table that rejects changes
to the rows of completed runs.

This revision creates that registry and moves every run still in the old
layout, a batch of runs at a time, with a progress bar on stderr:

* A run is *left to move* while ``runs.results_table`` is ``results_<pk>``.
  Moving it (rows copied into its shared table, parameter records and
  ``runs.results_table`` updated, old table dropped) happens in one
  transaction, so a run is either wholly moved or wholly left.
* Each batch leaves every shared table it touched locked again before it
  ends: a shared table's triggers are dropped while rows of completed runs go
  in and created again in the same transaction.
* When Alembic runs this revision in a transaction of its own (``env.py``
  handed a connection that was not yet in a transaction), the batches are
  committed one by one inside ``autocommit_block()``; an interrupted upgrade
  leaves the schema at 0004 with some runs moved, and running the upgrade
  again (every step here is idempotent) moves the runs that are left.  When
  the caller's connection is already inside a transaction, Alembic cannot
  commit in between, and the whole upgrade is that one transaction:
  interrupted, it leaves the store as it was.

All SQL is written out here, not imported from qdataset, so this revision
keeps doing what it did when it shipped.  The engine differences live in
the small ``_Sqlite`` / ``_Postgres`` helpers at the end.

There is no automatic downgrade of a store holding runs: shared tables are
not split back into one table per run (keep a copy of the file or a dump
from before the upgrade).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_LOCK_MESSAGE = "qdataset: this run is completed; its results are read-only"
_LOCK_SQLSTATE = "QD001"
_RUN, _INDEX = "_qd_run", "_qd_index"

#: A batch (one transaction when batches can be committed) ends after this many
#: runs or once it has copied at least this many rows.  ``config.attributes``
#: may override both (tests use small batches).
_BATCH_RUNS = 100
_BATCH_ROWS = 2_000_000

# The tables this revision reads and writes, as they are at this revision.
_meta = sa.MetaData()
_runs = sa.Table(
    "runs", _meta,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("completed_at", sa.Float),
    sa.Column("length", sa.BigInteger),
    sa.Column("results_table", sa.String(64)),
)
_run_params = sa.Table(
    "run_params", _meta,
    sa.Column("run_pk", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("spec", sa.Text),
    sa.Column("column_name", sa.Text),
)
_results_tables = sa.Table(
    "results_tables", _meta,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64)),
    sa.Column("width", sa.Integer),
)
_results_columns = sa.Table(
    "results_columns", _meta,
    sa.Column("table_pk", sa.Integer, primary_key=True),
    sa.Column("column_name", sa.Text, primary_key=True),
    sa.Column("param_key", sa.Text),
    sa.Column("storage", sa.String(8)),
)


def upgrade() -> None:
    context = op.get_context()
    if context.as_sql:
        raise NotImplementedError(
            "revision 0005 moves stored results and cannot be rendered as an SQL script; "
            "run the upgrade against the database (qdataset.connect(url) does)"
        )
    bind = op.get_bind()
    engine = _engine(bind)
    _create_registry(bind, engine)
    pending = _pending_runs(bind)
    if pending:
        attributes = context.config.attributes if context.config is not None else {}
        batches = _batches(pending,
                           attributes.get("qdataset_upgrade_batch_runs", _BATCH_RUNS),
                           attributes.get("qdataset_upgrade_batch_rows", _BATCH_ROWS))
        with _progress(len(pending)) as progress:
            if _owns_transaction(context):
                with context.autocommit_block():
                    for batch in batches:
                        with engine.transaction(bind):
                            _move_batch(bind, engine, batch, progress)
            else:
                engine.check_one_transaction(bind, len(pending))
                for batch in batches:
                    _move_batch(bind, engine, batch, progress)
    _finish(bind, engine)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.select(sa.func.count()).select_from(_runs)).scalar():
        raise NotImplementedError(
            "revision 0005 cannot be downgraded automatically: the runs' results now live in "
            "tables shared by runs of one layout, and qdataset does not split them back into "
            "one table per run; restore the copy of the store taken before the upgrade"
        )
    # No runs: nothing to split; take the registry away again.
    engine = _engine(bind)
    for (name,) in bind.execute(sa.select(_results_tables.c.name)).all():
        engine.ddl(bind, f"DROP TABLE IF EXISTS {engine.quote(name)}")
    op.drop_index("ix_results_columns_key", table_name="results_columns")
    op.drop_table("results_columns")
    op.drop_table("results_tables")
    with op.batch_alter_table("run_params") as batch:
        batch.drop_column("column_name")
    engine.restore_old_functions(bind)


# -- the registry ---------------------------------------------------------------------------


def _create_registry(bind: sa.Connection, engine: _Sqlite) -> None:
    """The new tables and column (each only if missing: a resumed upgrade finds them)."""
    inspector = sa.inspect(bind)
    if not inspector.has_table("results_tables"):
        op.create_table(
            "results_tables",
            sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(64), nullable=False, unique=True),
            sa.Column("width", sa.Integer, nullable=False),
        )
    if not inspector.has_table("results_columns"):
        op.create_table(
            "results_columns",
            sa.Column("table_pk", sa.Integer,
                      sa.ForeignKey("results_tables.pk", ondelete="CASCADE"),
                      primary_key=True),
            sa.Column("column_name", sa.Text, primary_key=True),
            sa.Column("param_key", sa.Text, nullable=False),
            sa.Column("storage", sa.String(8), nullable=False),
        )
        op.create_index("ix_results_columns_key", "results_columns", ["param_key", "storage"])
    if "column_name" not in {c["name"] for c in inspector.get_columns("run_params")}:
        op.add_column("run_params", sa.Column("column_name", sa.Text, nullable=True))
    engine.create_functions(bind)


def _storage(spec_json: str) -> str:
    """The storage token of a parameter, from its ParamSpec JSON.

    Matches the old column types: scalars of numpy kind f, i/u, b and U had
    REAL/INTEGER/TEXT columns (PostgreSQL DOUBLE PRECISION/BIGINT/SMALLINT/TEXT);
    everything else (arrays, complex, datetime, records, bytes) raw bytes.
    """
    spec = json.loads(spec_json)
    if spec.get("shape"):
        return "bytes"
    dtype = spec["type"]
    if not isinstance(dtype, str):  # a structured dtype, written as a descr list
        return "bytes"
    kind = np.dtype(dtype).kind  # "str" -> U, "bytes" -> S
    return {"f": "f", "i": "i", "u": "i", "b": "b", "U": "U"}.get(kind, "bytes")


class _Layout:
    """A shared table: its pk, name and the column of each parameter key.

    (A plain class: Alembic loads revisions without registering them as modules,
    which dataclasses need.)"""

    __slots__ = ("pk", "name", "columns")

    def __init__(self, pk: int, name: str) -> None:
        self.pk, self.name = pk, name
        self.columns: dict[str, str] = {}


def _load_layouts(bind: sa.Connection) -> dict[frozenset, _Layout]:
    """The shared tables by layout (the set of (param_key, storage) of their columns)."""
    tables = {pk: _Layout(pk, name) for pk, name in bind.execute(
        sa.select(_results_tables.c.pk, _results_tables.c.name))}
    keys: dict[int, set[tuple[str, str]]] = {pk: set() for pk in tables}
    for table_pk, column, key, storage in bind.execute(sa.select(
            _results_columns.c.table_pk, _results_columns.c.column_name,
            _results_columns.c.param_key, _results_columns.c.storage)):
        tables[table_pk].columns[key] = column
        keys[table_pk].add((key, storage))
    return {frozenset(keys[pk]): layout for pk, layout in tables.items()}


# -- the move -------------------------------------------------------------------------------


def _pending_runs(bind: sa.Connection) -> list[tuple[int, int]]:
    """(pk, length) of the runs still in a table of their own, in pk order."""
    rows = bind.execute(sa.select(_runs.c.pk, _runs.c.length, _runs.c.results_table)
                        .order_by(_runs.c.pk))
    return [(pk, int(length or 0)) for pk, length, table in rows if table == f"results_{pk}"]


def _batches(pending: list[tuple[int, int]], max_runs: int,
             max_rows: int) -> list[list[int]]:
    batches: list[list[int]] = [[]]
    rows = 0
    for pk, length in pending:
        if len(batches[-1]) >= max_runs or (batches[-1] and rows >= max_rows):
            batches.append([])
            rows = 0
        batches[-1].append(pk)
        rows += length
    return batches


def _owns_transaction(context) -> bool:
    """Whether Alembic began the transaction it runs this revision in (and so may
    commit it in ``autocommit_block()``): not when the connection it was given was
    already inside a transaction, which Alembic leaves to its owner."""
    return not getattr(context, "_in_external_transaction", True)


@contextmanager
def _progress(total: int) -> Iterator:
    from tqdm import tqdm

    with tqdm(total=total, unit="run", desc="qdataset: moving runs to shared tables",
              file=sys.stderr, disable=None, leave=False) as bar:
        yield bar


def _move_batch(bind: sa.Connection, engine: _Sqlite, pks: Sequence[int], progress) -> None:
    """Move the runs ``pks`` that are still left, and lock every table touched."""
    engine.serialize(bind)
    still = sorted(pk for pk, table in bind.execute(
        sa.select(_runs.c.pk, _runs.c.results_table).where(_runs.c.pk.in_(list(pks))))
        if table == f"results_{pk}")
    params: dict[int, list[tuple[str, str]]] = {pk: [] for pk in still}
    for run_pk, name, spec in bind.execute(
            sa.select(_run_params.c.run_pk, _run_params.c.name, _run_params.c.spec)
            .where(_run_params.c.run_pk.in_(still))
            .order_by(_run_params.c.run_pk, _run_params.c.position)):
        params[run_pk].append((name, _storage(spec)))
    old_columns = engine.old_columns(bind, [f"results_{pk}" for pk in still])
    layouts = _load_layouts(bind)
    triggers = engine.lock_triggers(bind)
    unlocked: dict[int, _Layout] = {}
    placed: list[dict] = []
    columns: list[dict] = []
    for pk in still:
        engine.check_old_columns(f"results_{pk}", old_columns.get(f"results_{pk}", {}),
                                 params[pk])
        layout, targets = _move_rows(bind, engine, pk, params[pk], layouts, triggers, unlocked)
        placed.append({"run": pk, "shared": layout.name})
        columns += [{"run": pk, "param": name, "physical": column}
                    for (name, _), column in zip(params[pk], targets, strict=True)]
        progress.update(1)
    progress.update(len(pks) - len(still))
    if columns:
        bind.execute(_run_params.update()
                     .where(_run_params.c.run_pk == sa.bindparam("run"),
                            _run_params.c.name == sa.bindparam("param"))
                     .values(column_name=sa.bindparam("physical")), columns)
    if placed:
        bind.execute(_runs.update().where(_runs.c.pk == sa.bindparam("run"))
                     .values(results_table=sa.bindparam("shared")), placed)
    for layout in unlocked.values():
        for statement in engine.lock_statements(layout.name):
            engine.ddl(bind, statement)


def _move_rows(bind: sa.Connection, engine: _Sqlite, pk: int, params: list[tuple[str, str]],
               layouts: dict[frozenset, _Layout], triggers: set[str],
               unlocked: dict[int, _Layout]) -> tuple[_Layout, list[str]]:
    """Copy run ``pk``'s rows into the shared table of its layout (made if new, its
    lock lifted until the batch ends) and drop its old table."""
    keys = [(name.casefold(), storage) for name, storage in params]
    if len({key for key, _ in keys}) != len(keys):
        raise RuntimeError(f"run {pk} has parameter names equal but for case; "
                           "qdataset never wrote such a run, so this store cannot be upgraded")
    layout = layouts.get(frozenset(keys))
    if layout is None:
        layout = layouts[frozenset(keys)] = _create_shared(bind, engine, pk, params)
    elif layout.pk not in unlocked:
        for trigger in engine.trigger_names(layout.name):
            if trigger in triggers:
                engine.ddl(bind, engine.drop_trigger(trigger, layout.name))
    unlocked[layout.pk] = layout
    targets = [layout.columns[key] for key, _ in keys]
    q, old = engine.quote, f"results_{pk}"
    engine.ddl(
        bind,
        f"INSERT INTO {q(layout.name)} ({', '.join(q(c) for c in [_RUN, _INDEX, *targets])}) "
        f"SELECT {int(pk)}, {', '.join(q(c) for c in [_INDEX, *(n for n, _ in params)])} "
        f"FROM {q(old)}")
    engine.ddl(bind, f"DROP TABLE {q(old)}")
    return layout, targets


def _create_shared(bind: sa.Connection, engine: _Sqlite, pk: int,
                   params: list[tuple[str, str]]) -> _Layout:
    """A new shared table for the layout of run ``pk`` (columns spelled as its names)."""
    table_pk = bind.execute(_results_tables.insert().values(
        name=f"_qd_moving_{int(pk)}", width=len(params))).inserted_primary_key[0]
    layout = _Layout(table_pk, f"results_l{table_pk}")
    bind.execute(_results_tables.update().where(_results_tables.c.pk == table_pk)
                 .values(name=layout.name))
    taken = {_RUN, _INDEX}
    definitions = []
    for name, storage in params:
        column, number = name, 0
        while column.casefold() in taken:  # a parameter named like a key column
            number += 1
            column = f"{name}_{number}"
        taken.add(column.casefold())
        layout.columns[name.casefold()] = column
        definitions.append(f"{engine.quote(column)} {engine.types[storage]}")
        bind.execute(_results_columns.insert().values(
            table_pk=table_pk, column_name=column, param_key=name.casefold(),
            storage=storage))
    engine.ddl(bind, engine.create_table(layout.name, definitions))
    return layout


def _finish(bind: sa.Connection, engine: _Sqlite) -> None:
    """Check nothing is left, make sure every shared table is locked, drop what the
    old layout alone used."""
    left = _pending_runs(bind)
    if left:
        raise RuntimeError(f"{len(left)} runs were not moved to shared tables "
                           f"(first: run pk {left[0][0]}); run the upgrade again")
    triggers = engine.lock_triggers(bind)
    for (name,) in bind.execute(sa.select(_results_tables.c.name)):
        if not set(engine.trigger_names(name)) <= triggers:
            for trigger in engine.trigger_names(name):
                if trigger in triggers:
                    engine.ddl(bind, engine.drop_trigger(trigger, name))
            for statement in engine.lock_statements(name):
                engine.ddl(bind, statement)
    engine.drop_old_functions(bind)


# -- engine differences (frozen with this revision) ----------------------------------------


def _engine(bind: sa.Connection) -> _Sqlite:
    engines = {"sqlite": _Sqlite, "postgresql": _Postgres}
    if bind.dialect.name not in engines:
        raise NotImplementedError(f"qdataset supports SQLite and PostgreSQL, "
                                  f"not {bind.dialect.name}")
    return engines[bind.dialect.name]()


class _Sqlite:
    """SQLite: REAL/INTEGER/TEXT/BLOB columns, WITHOUT ROWID tables, three BEFORE
    triggers per shared table that look the run up in ``runs``."""

    types = {"f": "REAL", "i": "INTEGER", "b": "INTEGER", "U": "TEXT", "bytes": "BLOB"}
    key_type = "INTEGER"
    table_options = " WITHOUT ROWID"
    events = ("insert", "update", "delete")

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @staticmethod
    def ddl(bind: sa.Connection, statement: str) -> None:
        """Run a statement without bound parameters (identifiers may hold % or :)."""
        bind.exec_driver_sql(statement, execution_options={"no_parameters": True})

    #: How a batch's transaction begins (SQLite: take the write lock at once).
    begin = "BEGIN IMMEDIATE"

    @contextmanager
    def transaction(self, bind: sa.Connection) -> Iterator[None]:
        """One batch inside ``autocommit_block()``: its own BEGIN ... COMMIT."""
        self.ddl(bind, self.begin)
        try:
            yield
        except BaseException:
            self.ddl(bind, "ROLLBACK")
            raise
        self.ddl(bind, "COMMIT")

    def serialize(self, bind: sa.Connection) -> None:
        """BEGIN IMMEDIATE already keeps other writers out."""

    def check_one_transaction(self, bind: sa.Connection, runs: int) -> None:
        """SQLite moves any number of runs in one transaction."""

    def create_table(self, table: str, definitions: list[str]) -> str:
        keys = [f"{self.quote(_RUN)} {self.key_type} NOT NULL",
                f"{self.quote(_INDEX)} {self.key_type} NOT NULL"]
        return (f"CREATE TABLE {self.quote(table)} ({', '.join(keys + definitions)}, "
                f"PRIMARY KEY ({self.quote(_RUN)}, {self.quote(_INDEX)})){self.table_options}")

    def old_columns(self, bind: sa.Connection, tables: list[str]) -> dict[str, dict[str, str]]:
        """{table: {column: declared type}} of the old results tables ``tables``."""
        found: dict[str, dict[str, str]] = {}
        for table, column, sql_type in bind.execute(sa.text(
                "SELECT m.name, c.name, c.type FROM sqlite_master m "
                "JOIN pragma_table_info(m.name) c WHERE m.type = 'table' "
                "AND m.name IN :tables").bindparams(sa.bindparam("tables", expanding=True)),
                {"tables": tables}):
            found.setdefault(table, {})[column] = sql_type
        return found

    def check_old_columns(self, table: str, found: dict[str, str],
                          params: list[tuple[str, str]]) -> None:
        """The old table has the parameters' columns, in the types their storage implies."""
        if not found:
            raise RuntimeError(f"results table {table!r} is missing; this store cannot be "
                               "upgraded until the run is removed or the table restored")
        for name, storage in params:
            if (found.get(name) or "").upper() != self.types[storage]:
                raise RuntimeError(
                    f"column {name!r} of {table!r} has type {found.get(name)!r}, "
                    f"not the {self.types[storage]} its parameter record implies; "
                    "this store was not written by qdataset")

    def trigger_names(self, table: str) -> list[str]:
        return [f"{table}_lock_{event}" for event in self.events]

    def lock_triggers(self, bind: sa.Connection) -> set[str]:
        """Names of the triggers that exist (to drop and check them)."""
        return set(bind.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())

    def drop_trigger(self, trigger: str, table: str) -> str:
        return f"DROP TRIGGER IF EXISTS {self.quote(trigger)}"

    def lock_statements(self, table: str) -> list[str]:
        # An UPDATE is checked on both sides: it may not change a completed run's
        # rows, nor move rows into one.
        rows = {"insert": ["NEW"], "update": ["OLD", "NEW"], "delete": ["OLD"]}
        return [
            f"CREATE TRIGGER {self.quote(f'{table}_lock_{event}')} BEFORE {event.upper()} "
            f"ON {self.quote(table)} WHEN "
            + " OR ".join(f'(SELECT completed_at FROM runs WHERE pk = {row}."{_RUN}") '
                          "IS NOT NULL" for row in rows[event])
            + f" BEGIN SELECT RAISE(ABORT, '{_LOCK_MESSAGE}'); END"
            for event in self.events
        ]

    def create_functions(self, bind: sa.Connection) -> None:
        """SQLite triggers need no functions."""

    def drop_old_functions(self, bind: sa.Connection) -> None:
        """Nothing to drop."""

    def restore_old_functions(self, bind: sa.Connection) -> None:
        """Nothing to restore."""


class _Postgres(_Sqlite):
    """PostgreSQL: DOUBLE PRECISION/BIGINT/SMALLINT/TEXT/BYTEA columns; statement
    triggers with transition tables call two functions created once."""

    types = {"f": "DOUBLE PRECISION", "i": "BIGINT", "b": "SMALLINT", "U": "TEXT",
             "bytes": "BYTEA"}
    key_type = "BIGINT"
    table_options = ""
    events = ("insert", "update", "delete", "truncate")

    begin = "BEGIN"

    def serialize(self, bind: sa.Connection) -> None:
        """One upgrader moves runs at a time (the mode conflicts with itself and
        with every write to runs)."""
        self.ddl(bind, "LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE")

    def check_one_transaction(self, bind: sa.Connection, runs: int) -> None:
        """Refuse a move PostgreSQL's lock table cannot hold in one transaction.

        Each moved run locks its old table, index and TOAST relations until the
        transaction ends (measured: 8.5 locks a run), and the server's shared
        lock table holds about max_locks_per_transaction x (max_connections +
        max_prepared_transactions) locks (64 x 100 by default); past it the
        upgrade fails with "out of shared memory" after minutes of work.
        """
        settings = [int(bind.exec_driver_sql(f"SHOW {name}").scalar()) for name in (
            "max_locks_per_transaction", "max_connections", "max_prepared_transactions")]
        capacity = settings[0] * (settings[1] + settings[2])
        if 4 * runs > capacity:
            raise RuntimeError(
                f"revision 0005 would move {runs} runs in one transaction, which needs more "
                f"locks than this PostgreSQL server holds (max_locks_per_transaction = "
                f"{settings[0]}); run Alembic with a connection that is not already inside a "
                "transaction, so the runs are moved in committed batches, or raise "
                "max_locks_per_transaction for the upgrade"
            )

    def old_columns(self, bind: sa.Connection, tables: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for table, column, sql_type in bind.execute(sa.text(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
                "AND c.relname IN :tables AND a.attnum > 0 AND NOT a.attisdropped")
                .bindparams(sa.bindparam("tables", expanding=True)), {"tables": tables}):
            found.setdefault(table, {})[column] = sql_type
        return found

    def lock_triggers(self, bind: sa.Connection) -> set[str]:
        return set(bind.execute(sa.text(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
        )).scalars())

    def drop_trigger(self, trigger: str, table: str) -> str:
        return f"DROP TRIGGER IF EXISTS {self.quote(trigger)} ON {self.quote(table)}"

    def lock_statements(self, table: str) -> list[str]:
        tables = {"insert": "NEW TABLE AS qd_changed",
                  "update": "OLD TABLE AS qd_changed NEW TABLE AS qd_new",
                  "delete": "OLD TABLE AS qd_changed"}
        statements = [
            f"CREATE TRIGGER {self.quote(f'{table}_lock_{event}')} AFTER {event.upper()} "
            f"ON {self.quote(table)} REFERENCING {tables[event]} "
            "FOR EACH STATEMENT EXECUTE FUNCTION qdataset_reject_completed_rows()"
            for event in ("insert", "update", "delete")
        ]
        statements.append(
            f"CREATE TRIGGER {self.quote(f'{table}_lock_truncate')} BEFORE TRUNCATE "
            f"ON {self.quote(table)} FOR EACH STATEMENT "
            "EXECUTE FUNCTION qdataset_reject_truncate()")
        return statements

    def create_functions(self, bind: sa.Connection) -> None:
        raise_locked = (f"RAISE EXCEPTION '{_LOCK_MESSAGE}' "
                        f"USING ERRCODE = '{_LOCK_SQLSTATE}'; END IF; RETURN NULL; END $$ "
                        "LANGUAGE plpgsql")
        raise_only = (f"RAISE EXCEPTION '{_LOCK_MESSAGE}' "
                      f"USING ERRCODE = '{_LOCK_SQLSTATE}'; END IF;")
        # The UPDATE trigger also names the new rows (qd_new): its second check
        # is only ever planned there (PL/pgSQL plans a statement when it first runs).
        self.ddl(bind,
                 "CREATE OR REPLACE FUNCTION qdataset_reject_completed_rows() RETURNS trigger "
                 "AS $$ BEGIN IF EXISTS (SELECT 1 FROM qd_changed c JOIN runs r "
                 f'ON r.pk = c."{_RUN}" WHERE r.completed_at IS NOT NULL) THEN '
                 + raise_only + " IF TG_OP = 'UPDATE' THEN "
                 "IF EXISTS (SELECT 1 FROM qd_new c JOIN runs r "
                 f'ON r.pk = c."{_RUN}" WHERE r.completed_at IS NOT NULL) THEN '
                 + raise_only + " END IF; RETURN NULL; END $$ LANGUAGE plpgsql")
        self.ddl(bind,
                 "CREATE OR REPLACE FUNCTION qdataset_reject_truncate() RETURNS trigger "
                 "AS $$ BEGIN IF EXISTS (SELECT 1 FROM runs WHERE results_table = TG_TABLE_NAME "
                 "AND completed_at IS NOT NULL) THEN " + raise_locked)

    def drop_old_functions(self, bind: sa.Connection) -> None:
        """The old per-run lock's function, once no trigger uses it any more (a
        results table left over without its run keeps it, and its lock)."""
        used = bind.execute(sa.text(
            "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE p.proname = 'qdataset_reject_write' "
            "AND p.pronamespace = current_schema()::regnamespace")).scalar()
        if not used:
            self.ddl(bind, "DROP FUNCTION IF EXISTS qdataset_reject_write()")

    def restore_old_functions(self, bind: sa.Connection) -> None:
        self.ddl(bind, "DROP FUNCTION IF EXISTS qdataset_reject_completed_rows()")
        self.ddl(bind, "DROP FUNCTION IF EXISTS qdataset_reject_truncate()")
        self.ddl(bind,
                 "CREATE OR REPLACE FUNCTION qdataset_reject_write() RETURNS trigger AS $$ "
                 f"BEGIN RAISE EXCEPTION '{_LOCK_MESSAGE}' USING ERRCODE = "
                 f"'{_LOCK_SQLSTATE}'; END $$ LANGUAGE plpgsql")
