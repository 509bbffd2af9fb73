"""Where a run's results go: choosing, creating and widening shared results tables.

A results table holds the rows of every run placed in it: the key columns
``(_qd_run, _qd_index)`` and one column per (parameter name, storage type).
A run is placed once, when it is created:

1. in a table whose columns already cover its parameters (the narrowest one):
   no DDL at all, which is the common case of a lab repeating its measurements;
2. else, once the store holds ``NAMED_COLUMNS`` parameter columns, in a table
   of at most ``SHARED_WIDTH`` columns that has enough columns of the run's
   types: its parameters take the columns made for their names where the
   table has them, and free columns of their type otherwise, with no DDL (a
   store whose runs keep inventing names stops growing its schema);
3. else in the table that can take the missing columns while keeping at most
   ``SHARED_WIDTH`` parameter columns, preferring the one that shares most
   columns with the run, then the narrowest: one cheap ``ALTER TABLE ADD
   COLUMN`` per missing column (tables stay narrow, and labs whose every run
   has names of its own still fill a bounded number of tables);
4. else in a new table with exactly its columns (also for runs wider than
   ``SHARED_WIDTH``, up to the engine's column limit).

A parameter added to a running run takes a column the same way (never one the
run uses already), adding it to the run's table if need be.  Schema objects
therefore grow with layouts, not with runs.  The mapping run -> table ->
column is stored in ``runs.results_table`` and ``run_params.column_name``;
``results_columns.param_key`` says which name a column was made for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import StorageLimitError
from ..paramspec import ParamSpec
from .dialect import Dialect, storage_of
from .schema import results_columns, results_table_name, results_tables

#: Most parameter columns a shared table grows to for runs placed in it.
SHARED_WIDTH = 64

#: Parameter columns (all tables together) up to which every new (name, type)
#: gets a column named after it.  Past it, a run with new names takes free
#: columns of their types in a table it fits, with no DDL: in SQLite every
#: ``ALTER TABLE`` re-parses the whole schema (33 ms with 26,666 columns), so
#: a store whose runs keep inventing names would otherwise get slower to write.
NAMED_COLUMNS = 4096


@dataclass(frozen=True)
class Placement:
    """A results table and the column of each parameter (in the specs' order)."""

    table_pk: int
    table: str
    columns: list[str]


def place_run(conn: sa.Connection, dialect: Dialect, specs: Sequence[ParamSpec]) -> Placement:
    """Choose (creating or widening if needed) the results table of a new run."""
    wanted = [_key(s) for s in specs]
    choice = _choose(conn, wanted)
    if choice is None or choice[1]:  # DDL ahead: serialise it, then decide again
        dialect.lock_layouts(conn)
        choice = _choose(conn, wanted)
    if choice is None:
        return _create_table(conn, dialect, specs)
    table_pk, _ddl = choice
    return Placement(table_pk, _table_name(conn, table_pk),
                     _ensure_columns(conn, dialect, table_pk, specs, used=set()))


def add_columns(conn: sa.Connection, dialect: Dialect, table_pk: int,
                specs: Sequence[ParamSpec], used: set[str]) -> list[str]:
    """Columns for parameters added to a run of table ``table_pk`` whose other
    parameters hold the columns ``used`` (added to the table where missing)."""
    dialect.lock_layouts(conn)
    return _ensure_columns(conn, dialect, table_pk, specs, used)


def _key(spec: ParamSpec) -> tuple[str, str]:
    """What a column is made for: (parameter name casefolded, storage type)."""
    return spec.name.casefold(), storage_of(spec)


def _choose(conn: sa.Connection, wanted: list[tuple[str, str]]) -> tuple[int, bool] | None:
    """(table, needs DDL) by the policy above; None: a new table."""
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
    if sum(widths.values()) >= NAMED_COLUMNS:
        needed = Counter(storage for _, storage in wanted)
        held = _columns_by_storage(conn)
        fitting = [pk for pk, width in widths.items() if width <= SHARED_WIDTH  # narrow rows
                   and all(held.get((pk, storage), 0) >= n for storage, n in needed.items())]
        if fitting:
            return min(fitting, key=lambda pk: (-overlap.get(pk, 0), widths[pk], pk)), False
    growable = [pk for pk, width in widths.items()
                if width + len(wanted) - overlap.get(pk, 0) <= SHARED_WIDTH]
    if growable:
        return min(growable, key=lambda pk: (-overlap.get(pk, 0), widths[pk], pk)), True
    return None


def _columns_by_storage(conn: sa.Connection) -> dict[tuple[int, str], int]:
    """How many columns of each storage type each results table has."""
    rows = conn.execute(
        sa.select(results_columns.c.table_pk, results_columns.c.storage, sa.func.count())
        .group_by(results_columns.c.table_pk, results_columns.c.storage))
    return {(pk, storage): count for pk, storage, count in rows}


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
    _register(conn, table_pk, [_key(s) for s in specs], columns)
    return Placement(table_pk, table, columns)


def _ensure_columns(conn: sa.Connection, dialect: Dialect, table_pk: int,
                    specs: Sequence[ParamSpec], used: set[str]) -> list[str]:
    """The column of each spec in table ``table_pk``, none of them in ``used`` (the
    run's other columns): the column made for its name and type; else, once the
    store is past NAMED_COLUMNS (or when that column holds another of the run's
    parameters), a free column of its type; else a new column."""
    held = sorted(conn.execute(  # by name: free columns are taken in that order
        sa.select(results_columns.c.column_name, results_columns.c.param_key,
                  results_columns.c.storage).where(results_columns.c.table_pk == table_pk)
    ).all())
    made_for = {(key, storage): name for name, key, storage in held}
    taken = {name.casefold() for name in used}
    chosen: dict[int, str] = {}
    for i, spec in enumerate(specs):  # first every column made for the name
        name = made_for.get(_key(spec))
        if name is not None and name.casefold() not in taken:
            chosen[i] = name
            taken.add(name.casefold())
    pending = [i for i in range(len(specs)) if i not in chosen]
    if pending:
        sharing = _store_width(conn) >= NAMED_COLUMNS
        for i in pending:  # then free columns of the same type, where names share
            spec = specs[i]
            if not (sharing or _key(spec) in made_for):
                continue
            free = next((name for name, _, storage in held
                         if storage == storage_of(spec) and name.casefold() not in taken), None)
            if free is not None:
                chosen[i] = free
                taken.add(free.casefold())
    missing = [i for i in range(len(specs)) if i not in chosen]
    if missing:
        table = _table_name(conn, table_pk)
        total = len(held) + len(missing) + 2
        if total > dialect.max_columns:
            raise StorageLimitError(
                f"results table {table!r} would need {total} columns, more than the "
                f"{dialect.max_columns} {dialect.name} allows; split the run or store "
                "related values as one array parameter (ParamSpec(shape=...))"
            )
        names = _new_column_names(dialect, [specs[i] for i in missing],
                                  {name.casefold() for name, _, _ in held})
        keys = []
        for name, i in zip(names, missing, strict=True):
            conn.exec_driver_sql(dialect.add_column_sql(table, name, storage_of(specs[i])))
            chosen[i] = name
            # a column for a name the table has a column for already (held by another
            # of the run's parameters) is registered under its own name: one column
            # per (name, type) keeps _choose's overlap count right
            key = _key(specs[i])
            keys.append((name.casefold(), key[1]) if key in made_for else key)
        _register(conn, table_pk, keys, names)
    return [chosen[i] for i in range(len(specs))]


def _store_width(conn: sa.Connection) -> int:
    """Parameter columns in all the store's results tables."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(results_tables.c.width), 0))
                            ).scalar_one())


def _register(conn: sa.Connection, table_pk: int, keys: Sequence[tuple[str, str]],
              columns: Sequence[str]) -> None:
    if keys:
        conn.execute(results_columns.insert(), [
            {"table_pk": table_pk, "column_name": name, "param_key": key,
             "storage": storage} for name, (key, storage) in zip(columns, keys, strict=True)])
    conn.execute(results_tables.update().where(results_tables.c.pk == table_pk)
                 .values(width=results_tables.c.width + len(keys)))


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
