"""Where a run's results go: choosing, creating and widening shared results tables.

A results table holds the rows of every run placed in it: the key columns
``(_qd_run, _qd_index)`` and one column per (parameter name, storage type).
A run is placed once, when it is created:

1. in a table whose columns already cover its parameters (the narrowest one):
   no DDL at all, which is the common case of a lab repeating its measurements;
2. else in the table that can take the missing columns while keeping at most
   ``SHARED_WIDTH`` parameter columns, preferring the one that shares most
   columns with the run, then the narrowest: one cheap ``ALTER TABLE ADD
   COLUMN`` per missing column (tables stay narrow, and labs whose every run
   has names of its own still fill a bounded number of tables);
3. else in a new table with exactly its columns (also for runs wider than
   ``SHARED_WIDTH``, up to the engine's column limit).

A parameter added to a running run adds its column to the run's table if the
table lacks it.  Schema objects therefore grow with layouts, not with runs.
The mapping run -> table -> column is stored in ``runs.results_table`` and
``run_params.column_name``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import StorageLimitError
from ..paramspec import ParamSpec
from .dialect import Dialect, storage_of
from .schema import results_columns, results_table_name, results_tables

#: Most parameter columns a shared table grows to for runs placed in it.
SHARED_WIDTH = 64


@dataclass(frozen=True)
class Placement:
    """A results table and the column of each parameter (in the specs' order)."""

    table_pk: int
    table: str
    columns: list[str]


def place_run(conn: sa.Connection, dialect: Dialect, specs: Sequence[ParamSpec]) -> Placement:
    """Choose (creating or widening if needed) the results table of a new run."""
    wanted = [(s.name.casefold(), storage_of(s)) for s in specs]
    choice = _choose(conn, wanted)
    if choice is None or choice[1]:  # DDL ahead: serialise it, then decide again
        dialect.lock_layouts(conn)
        choice = _choose(conn, wanted)
    if choice is None:
        return _create_table(conn, dialect, specs)
    table_pk, _missing = choice
    return Placement(table_pk, _table_name(conn, table_pk),
                     _ensure_columns(conn, dialect, table_pk, specs))


def add_columns(conn: sa.Connection, dialect: Dialect, table_pk: int,
                specs: Sequence[ParamSpec]) -> list[str]:
    """Columns for parameters added to a run of table ``table_pk`` (added where missing)."""
    dialect.lock_layouts(conn)
    return _ensure_columns(conn, dialect, table_pk, specs)


def _choose(conn: sa.Connection, wanted: list[tuple[str, str]]) -> tuple[int, bool] | None:
    """(table, needs new columns) by the policy above; None: a new table."""
    overlap: dict[int, int] = {}
    if wanted:
        rows = conn.execute(
            sa.select(results_columns.c.table_pk, sa.func.count())
            .where(sa.tuple_(results_columns.c.param_key, results_columns.c.storage)
                   .in_(wanted))
            .group_by(results_columns.c.table_pk))
        overlap = {pk: count for pk, count in rows}
    widths = dict(conn.execute(sa.select(results_tables.c.pk, results_tables.c.width)).all())
    covering = [pk for pk in widths if overlap.get(pk, 0) == len(wanted)]
    if covering:
        return min(covering, key=lambda pk: (widths[pk], pk)), False
    growable = [pk for pk, width in widths.items()
                if width + len(wanted) - overlap.get(pk, 0) <= SHARED_WIDTH]
    if growable:
        return min(growable, key=lambda pk: (-overlap.get(pk, 0), widths[pk], pk)), True
    return None


def _table_name(conn: sa.Connection, table_pk: int) -> str:
    return conn.execute(sa.select(results_tables.c.name)
                        .where(results_tables.c.pk == table_pk)).scalar_one()


def _create_table(conn: sa.Connection, dialect: Dialect,
                  specs: Sequence[ParamSpec]) -> Placement:
    table_pk = conn.execute(
        results_tables.insert().values(name=f"pending-{id(specs)}", width=0)
    ).inserted_primary_key[0]
    table = results_table_name(table_pk)
    conn.execute(results_tables.update().where(results_tables.c.pk == table_pk)
                 .values(name=table))
    columns = _new_column_names(dialect, specs, taken=set())
    conn.exec_driver_sql(dialect.create_table_sql(
        table, [(name, storage_of(s)) for name, s in zip(columns, specs, strict=True)]))
    for statement in dialect.lock_statements(table):
        conn.exec_driver_sql(statement)
    _register(conn, table_pk, specs, columns)
    return Placement(table_pk, table, columns)


def _ensure_columns(conn: sa.Connection, dialect: Dialect, table_pk: int,
                    specs: Sequence[ParamSpec]) -> list[str]:
    """The column of each spec in table ``table_pk``, adding the missing ones."""
    present = {(key, storage): name for name, key, storage in conn.execute(
        sa.select(results_columns.c.column_name, results_columns.c.param_key,
                  results_columns.c.storage).where(results_columns.c.table_pk == table_pk))}
    missing = [s for s in specs if (s.name.casefold(), storage_of(s)) not in present]
    if missing:
        table = _table_name(conn, table_pk)
        total = len(present) + len(missing) + 2
        if total > dialect.max_columns:
            raise StorageLimitError(
                f"results table {table!r} would need {total} columns, more than the "
                f"{dialect.max_columns} {dialect.name} allows; split the run or store "
                "related values as one array parameter (ParamSpec(shape=...))"
            )
        taken = {name.casefold() for name in present.values()}
        names = _new_column_names(dialect, missing, taken)
        for name, spec in zip(names, missing, strict=True):
            conn.exec_driver_sql(dialect.add_column_sql(table, name, storage_of(spec)))
            present[(spec.name.casefold(), storage_of(spec))] = name
        _register(conn, table_pk, missing, names)
    return [present[(s.name.casefold(), storage_of(s))] for s in specs]


def _register(conn: sa.Connection, table_pk: int, specs: Sequence[ParamSpec],
              columns: Sequence[str]) -> None:
    if specs:
        conn.execute(results_columns.insert(), [
            {"table_pk": table_pk, "column_name": name, "param_key": s.name.casefold(),
             "storage": storage_of(s)} for name, s in zip(columns, specs, strict=True)])
    conn.execute(results_tables.update().where(results_tables.c.pk == table_pk)
                 .values(width=results_tables.c.width + len(specs)))


def _new_column_names(dialect: Dialect, specs: Sequence[ParamSpec], taken: set[str]
                      ) -> list[str]:
    """A column name per spec: the parameter's name, or (when a column of that name
    holds another storage type) the name with the storage type appended."""
    names = []
    for spec in specs:
        name, storage, attempt = spec.name, storage_of(spec), 0
        while name.casefold() in taken:
            attempt += 1
            suffix = f"__{storage}" if attempt == 1 else f"__{storage}{attempt}"
            name = _fit(dialect, spec.name, suffix)
        taken.add(name.casefold())
        names.append(name)
    return names


def _fit(dialect: Dialect, base: str, suffix: str) -> str:
    """``base + suffix``, shortening ``base`` to the engine's identifier limit."""
    limit = dialect.max_identifier_bytes
    while limit is not None and len((base + suffix).encode()) > limit:
        base = base[:-1]
    return base + suffix
