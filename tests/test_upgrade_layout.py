"""Revision 0005: a store in the old layout (one results table per run) moved into
tables shared by runs of one layout, on SQLite and PostgreSQL.

The old layout comes from a real file (``fixtures/layout1.db``, written by the
release at revision 0003; on PostgreSQL rebuilt from it with the column types
and the lock trigger the old code used) and from ``_write_old_store`` (more
runs, odd names, case variants), so upgrades are checked value for value
(floats bit for bit) against what the old tables held.  Interrupted upgrades
are simulated by an exception between runs and by SIGKILL of a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import drop_postgres_schema, postgres_schema_url

import qdataset
from qdataset import ParamSpec
from qdataset.store.engine import create_engine
from qdataset.store.migrate import _upgrade, head_revision, migrations_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LAYOUT1 = FIXTURES / "layout1.db"

#: Column types of the old layout per storage token (as qdataset wrote them).
OLD_TYPES = {
    "sqlite": {"f": "REAL", "i": "INTEGER", "b": "INTEGER", "U": "TEXT", "bytes": "BLOB"},
    "postgresql": {"f": "DOUBLE PRECISION", "i": "BIGINT", "b": "SMALLINT", "U": "TEXT",
                   "bytes": "BYTEA"},
}
NO_PARAMS = {"no_parameters": True}


# -- running the upgrade --------------------------------------------------------------------


def _alembic(engine: sa.Engine, connection: sa.Connection, target: str, **attributes) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes.update(attributes, connection=connection)
    command.upgrade(config, target)


def upgrade_in_one_transaction(engine: sa.Engine, target: str = "head") -> None:
    """Alembic inside the caller's transaction (as qdataset.store.migrate._upgrade
    ran it when this revision was written): the upgrade is one transaction."""
    with engine.begin() as connection:
        _alembic(engine, connection, target)


def upgrade_in_batches(engine: sa.Engine, target: str = "head", batch_runs: int = 2) -> None:
    """Alembic given a connection outside a transaction: it begins its own, and
    revision 0005 commits its batches one by one."""
    with engine.connect() as connection:
        _alembic(engine, connection, target, qdataset_upgrade_batch_runs=batch_runs)


def upgrade_as_qdataset_does(engine: sa.Engine, target: str = "head") -> None:
    _upgrade(engine, target)


MODES = {"one transaction": upgrade_in_one_transaction, "batches": upgrade_in_batches}
UPGRADES = {**MODES, "qdataset": upgrade_as_qdataset_does}



# -- stores in the old layout ---------------------------------------------------------------


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ddl(conn: sa.Connection, statement: str):
    return conn.exec_driver_sql(statement, execution_options=NO_PARAMS)


def write_old_run(conn: sa.Connection, pk: int, columns: list[tuple[str, str]],
                  rows: list[tuple], completed: bool) -> None:
    """A results table as the old code made it: ``_qd_index`` primary key, one
    column per parameter, then rows, then (completed) the per-run lock.  (The old
    code added the columns one ALTER at a time, which on SQLite re-reads the whole
    schema each time; one CREATE TABLE makes the same table in a fraction.)"""
    kind = conn.dialect.name
    table = f"results_{pk}"
    key = "INTEGER" if kind == "sqlite" else "BIGINT"
    definitions = [f"{q('_qd_index')} {key} PRIMARY KEY",
                   *(f"{q(name)} {OLD_TYPES[kind][storage]}" for name, storage in columns)]
    ddl(conn, f"CREATE TABLE {q(table)} ({', '.join(definitions)})")
    if rows:
        target = sa.table(table, *(sa.column(n) for n in ["_qd_index", *(c for c, _ in columns)]))
        keys = [f"p{i}" for i in range(len(columns) + 1)]
        conn.execute(target.insert().values(
            {c: sa.bindparam(k) for c, k in zip(target.c, keys, strict=True)}),
            [dict(zip(keys, row, strict=True)) for row in rows])
    if completed:
        if kind == "sqlite":
            for event in ("insert", "update", "delete"):
                ddl(conn, f"CREATE TRIGGER {q(f'{table}_locked_{event}')} BEFORE "
                          f"{event.upper()} ON {q(table)} BEGIN SELECT RAISE(ABORT, "
                          "'qdataset: this run is completed; its results are read-only'); END")
        else:
            ddl(conn, f"CREATE TRIGGER {q(table + '_locked')} BEFORE INSERT OR UPDATE OR "
                      f"DELETE OR TRUNCATE ON {q(table)} FOR EACH STATEMENT "
                      "EXECUTE FUNCTION qdataset_reject_write()")


def copy_layout1_to(engine: sa.Engine) -> None:
    """Rebuild fixtures/layout1.db's runs in ``engine`` (at revision 0004) in the old
    layout, with the column types the old code chose there."""
    src = sqlite3.connect(LAYOUT1)
    try:
        with engine.begin() as conn:
            for table in ("runs", "run_params", "run_metadata"):
                names = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                rows = [dict(zip(names, r, strict=True))
                        for r in src.execute(f"SELECT * FROM {table}")]
                if rows:
                    conn.execute(sa.table(table, *map(sa.column, names)).insert(), rows)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT setval('runs_pk_seq', (SELECT max(pk) FROM runs))")
            for pk, completed in src.execute("SELECT pk, completed_at FROM runs ORDER BY pk"):
                specs = {name: json.loads(spec) for name, spec in src.execute(
                    "SELECT name, spec FROM run_params WHERE run_pk = ?", (pk,))}
                declared = [(r[1], r[2]) for r in
                            src.execute(f'PRAGMA table_info("results_{pk}")')][1:]
                columns = [(name, _storage_of_sqlite_column(sql_type, specs[name]))
                           for name, sql_type in declared]
                rows = src.execute(f'SELECT * FROM "results_{pk}" ORDER BY "_qd_index"').fetchall()
                write_old_run(conn, pk, columns, rows, completed is not None)
    finally:
        src.close()


def _storage_of_sqlite_column(sql_type: str, spec: dict) -> str:
    """The storage token from an old SQLite column's declared type (bool: INTEGER)."""
    if sql_type == "INTEGER" and spec["type"] == "bool" and not spec["shape"]:
        return "b"
    return {"REAL": "f", "INTEGER": "i", "TEXT": "U", "BLOB": "bytes"}[sql_type]


#: Layouts of generated runs: names with odd characters, a parameter named like the
#: new key column, two spellings of one layout, one name with two storage types.
LAYOUTS = [
    [ParamSpec("x", np.float64, role="setpoint"), ParamSpec("y", np.float64)],
    [ParamSpec("X", np.float64, role="setpoint"), ParamSpec("Y", np.float64)],
    [ParamSpec("select", np.int64), ParamSpec('a"b%c:d', str),
     ParamSpec("_qd_run", bool), ParamSpec("trace", np.float32, shape=(4,))],
    [],
    [ParamSpec("x", np.uint16), ParamSpec("z", np.complex128)],
]
_LAYOUT_STORAGE = [["f", "f"], ["f", "f"], ["i", "U", "b", "bytes"], [], ["i", "bytes"]]


def _value(storage: str, run: int, row: int):
    if storage == "f":
        return [0.1 * run + row / 3, float("inf"), -float("inf"), 5e-324][(run + row) % 4]
    if storage == "i":
        return run * 1000 + row
    if storage == "b":
        return (run + row) % 2
    if storage == "U":
        return f"r{run}.{row} ☃"
    return np.arange(4, dtype=np.float32).tobytes() + struct.pack("<q", run * row)


def write_old_store(engine: sa.Engine, runs: int) -> None:
    """``runs`` runs in the old layout (engine at revision 0004): a few rows each,
    every third run still open, some values missing."""
    with engine.begin() as conn:
        for pk in range(1, runs + 1):
            layout = (pk - 1) % len(LAYOUTS)
            specs, storage = LAYOUTS[layout], _LAYOUT_STORAGE[layout]
            length = pk % 6
            completed = pk % 3 != 0
            conn.execute(sa.table("runs", *map(sa.column, (
                "pk", "run_id", "name", "created_at", "completed_at", "length",
                "results_table"))).insert().values(
                pk=pk, run_id=f"run-{pk}", name=f"layout{layout}", created_at=1.0e9 + pk,
                completed_at=1.0e9 + pk + 0.5 if completed else None, length=length,
                results_table=f"results_{pk}"))
            for position, spec in enumerate(specs):
                conn.execute(sa.table("run_params", *map(sa.column, (
                    "run_pk", "position", "name", "spec"))).insert().values(
                    run_pk=pk, position=position, name=spec.name, spec=spec.to_json()))
            rows = [(i, *(None if (pk + i + j) % 5 == 0 else _value(s, pk, i)
                          for j, s in enumerate(storage))) for i in range(length)]
            write_old_run(conn, pk, [(s.name, t) for s, t in zip(specs, storage, strict=True)],
                          rows, completed)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT setval('runs_pk_seq', (SELECT max(pk) FROM runs))")


# -- reading both layouts -------------------------------------------------------------------


def _plain(value):
    """A stored value in a form that compares bit for bit."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value).hex())
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def contents(conn: sa.Connection) -> dict[int, tuple[list[str], list[tuple]]]:
    """Every run's (parameter names, rows) from whichever layout it is in."""
    out = {}
    runs = conn.execute(sa.text("SELECT pk, results_table FROM runs ORDER BY pk")).all()
    new = "column_name" in {c["name"] for c in sa.inspect(conn).get_columns("run_params")}
    for pk, table in runs:
        params = conn.execute(sa.text(
            f"SELECT name{', column_name' if new else ''} FROM run_params "
            "WHERE run_pk = :pk ORDER BY position"), {"pk": pk}).all()
        names = [p[0] for p in params]
        if table == f"results_{pk}":
            columns, where = names, ""
        else:
            columns, where = [p[1] for p in params], f'WHERE "_qd_run" = {int(pk)}'
        rows = ddl(conn, f"SELECT {', '.join(q(c) for c in ['_qd_index', *columns])} "
                         f'FROM {q(table)} {where} ORDER BY "_qd_index"').all()
        out[pk] = (names, [tuple(_plain(v) for v in row) for row in rows])
    return out


def revision_of(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def tables_of(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def trigger_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = ("SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                   "WHERE c.relnamespace = current_schema()::regnamespace "
                   "AND NOT t.tgisinternal")
        return set(conn.exec_driver_sql(sql).scalars())


def lock_names(engine: sa.Engine, table: str) -> set[str]:
    events = ["insert", "update", "delete"]
    if engine.dialect.name == "postgresql":
        events.append("truncate")
    return {f"{table}_lock_{event}" for event in events}


def assert_every_shared_table_locked(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        shared = conn.exec_driver_sql("SELECT name FROM results_tables").scalars().all()
    triggers = trigger_names(engine)
    for table in shared:
        assert lock_names(engine, table) <= triggers, table


def assert_upgraded(engine: sa.Engine, before: dict) -> None:
    """Schema at head, no old tables or locks left, registry filled, values identical."""
    assert revision_of(engine) == head_revision()
    tables = tables_of(engine)
    assert not [t for t in tables if t.startswith("results_") and t[8:].isdigit()]
    assert not [t for t in trigger_names(engine) if "_locked" in t]
    with engine.connect() as conn:
        assert contents(conn) == before
        runs = conn.execute(sa.text("SELECT pk, results_table, length FROM runs")).all()
        registry = dict(conn.execute(sa.text("SELECT name, width FROM results_tables")).all())
        columns = conn.execute(sa.text(
            "SELECT t.name, c.column_name, c.param_key, c.storage FROM results_columns c "
            "JOIN results_tables t ON t.pk = c.table_pk")).all()
        params = conn.execute(sa.text(
            "SELECT p.run_pk, p.name, p.column_name, p.spec, r.results_table FROM run_params p "
            "JOIN runs r ON r.pk = p.run_pk")).all()
        assert set(registry) <= tables
        assert {t for _, t, _ in runs} <= set(registry)
        by_table: dict[str, dict[str, tuple[str, str]]] = {}
        for table, column, key, storage in columns:
            by_table.setdefault(table, {})[column] = (key, storage)
        for table, width in registry.items():
            assert len(by_table.get(table, {})) == width
            physical = [c["name"] for c in sa.inspect(conn).get_columns(table)]
            assert physical == ["_qd_run", "_qd_index", *by_table.get(table, {})]
        for run_pk, name, column, spec, table in params:
            assert column is not None, (run_pk, name)
            key, storage = by_table[table][column]
            assert key == name.casefold()
            assert storage == _expected_storage(json.loads(spec))
        # every row belongs to a run of its table; none twice (primary key), none extra
        for table in registry:
            counts = dict(ddl(conn, f'SELECT "_qd_run", count(*) FROM {q(table)} '
                                    'GROUP BY "_qd_run"').all())
            for run_pk, count in counts.items():
                assert (run_pk, table) in {(pk, t) for pk, t, _ in runs}
                assert count == len(before[run_pk][1])
        # layouts: one table per distinct set of (param_key, storage)
        layouts = {table: frozenset(v) for table, v in
                   ((t, by_table.get(t, {}).values()) for t in registry)}
        assert len(set(layouts.values())) == len(layouts)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            functions = set(conn.exec_driver_sql(
                "SELECT proname FROM pg_proc "
                "WHERE pronamespace = current_schema()::regnamespace").scalars())
        assert "qdataset_reject_write" not in functions
        assert {"qdataset_reject_completed_rows", "qdataset_reject_truncate"} <= functions
    assert_every_shared_table_locked(engine)


def _expected_storage(spec: dict) -> str:
    """The storage token, written out differently from the revision (by the dtype)."""
    dtype = ParamSpec.from_dict(spec)
    if dtype.shape or dtype.type.kind not in "fiubU":
        return "bytes"
    return {"u": "i"}.get(dtype.type.kind, dtype.type.kind)


# -- engines --------------------------------------------------------------------------------


@pytest.fixture
def engine(bare_engine):
    """An empty engine per backend (SQLite file or a private PostgreSQL schema)."""
    return bare_engine


@pytest.fixture
def layout1(engine, tmp_path):
    """The fixture store in ``engine``: the file itself on SQLite, rebuilt on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        shutil.copyfile(LAYOUT1, engine.url.database)
        assert revision_of(engine) == "0003"
    else:
        upgrade_in_one_transaction(engine, "0004")
        copy_layout1_to(engine)
    return engine


@pytest.fixture
def generated(engine):
    """A store in the old layout with 20 generated runs."""
    upgrade_in_one_transaction(engine, "0004")
    write_old_store(engine, 20)
    return engine


# -- the fixture store ----------------------------------------------------------------------


@pytest.mark.parametrize("upgrade", UPGRADES.values(), ids=UPGRADES.keys())
def test_layout1_upgrades_with_every_value_kept(layout1, upgrade):
    with layout1.connect() as conn:
        before = contents(conn)
    assert len(before) == 5 and sum(len(rows) for _, rows in before.values()) == 66
    upgrade(layout1)
    assert_upgraded(layout1, before)
    with layout1.connect() as conn:
        placed = dict(conn.execute(sa.text("SELECT run_id, results_table FROM runs")).all())
        widths = dict(conn.execute(sa.text("SELECT name, width FROM results_tables")).all())
    expected = json.loads((FIXTURES / "layout1.json").read_text())
    sweeps = [run_id for run_id in expected if expected[run_id]["name"] == "sweep"]
    assert placed[sweeps[0]] == placed[sweeps[1]]  # one layout, one table
    assert len(set(placed.values())) == 4  # sweep, mixed, interrupted, empty
    empty = next(run_id for run_id in expected if expected[run_id]["name"] == "empty")
    assert widths[placed[empty]] == 0


def test_layout1_values_match_what_the_old_release_read(layout1):
    """The moved rows against layout1.json (what the old code's get_data returned)."""
    upgrade_in_one_transaction(layout1)
    expected = json.loads((FIXTURES / "layout1.json").read_text())
    with layout1.connect() as conn:
        pks = dict(conn.execute(sa.text("SELECT run_id, pk FROM runs")).all())
        stored = contents(conn)
    for run_id, run in expected.items():
        names, rows = stored[pks[run_id]]
        assert names == [p["name"] for p in run["parameters"]]
        assert len(rows) == run["length"]
        for position, name in enumerate(names, start=1):
            column = [row[position] for row in rows]
            values = run["values"][name]
            if "hex" in values and values["dtype"] == "float64":
                want = [v[0] for v in values["hex"]]
                got = ["nan" if v is None else
                       float(struct.unpack("<d", bytes.fromhex(v[1]))[0]).hex() for v in column]
                assert got == want, name
            elif values["dtype"] in ("int64", "bool") or values["dtype"].startswith("<U"):
                want = [None if masked else v
                        for v, masked in zip(values["values"], values["mask"], strict=True)]
                if values["dtype"] == "bool":
                    column = [None if v is None else bool(v) for v in column]
                assert column == want, name


def test_completed_runs_stay_locked_and_open_runs_writable_sqlite(tmp_path):
    path = tmp_path / "old.db"
    shutil.copyfile(LAYOUT1, path)
    engine = create_engine(f"sqlite:///{path}")
    upgrade_in_one_transaction(engine)
    with engine.connect() as conn:
        placed = dict(conn.execute(sa.text("SELECT name, results_table FROM runs")).all())
        pks = dict(conn.execute(sa.text("SELECT name, pk FROM runs")).all())
    engine.dispose()
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        sweep, pk = placed["sweep"], pks["sweep"]  # (the second sweep; both completed)
        for statement in (
            f'INSERT INTO "{sweep}" ("_qd_run", "_qd_index", "x", "y") VALUES ({pk}, 99, 1, 2)',
            f'UPDATE "{sweep}" SET "y" = 0 WHERE "_qd_run" = {pk}',
            f'DELETE FROM "{sweep}" WHERE "_qd_run" = {pk}',
            f'DELETE FROM "{sweep}"',
            f'INSERT INTO "{placed["empty"]}" ("_qd_run", "_qd_index") '
            f'VALUES ({pks["empty"]}, 0)',
        ):
            with pytest.raises(sqlite3.IntegrityError) as info:
                raw.execute(statement)
            assert info.value.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_TRIGGER
        table, open_pk = placed["interrupted"], pks["interrupted"]
        raw.execute(f'INSERT INTO "{table}" ("_qd_run", "_qd_index", "k") '
                    f"VALUES ({open_pk}, 5, 50)")
        raw.execute(f'UPDATE "{table}" SET "k" = -1 WHERE "_qd_run" = {open_pk}')
        raw.execute(f'DELETE FROM "{table}" WHERE "_qd_run" = {open_pk} AND "_qd_index" = 0')
        assert raw.execute(f'SELECT "_qd_index", "k" FROM "{table}" ORDER BY 1').fetchall() == \
            [(1, -1), (2, -1), (3, -1), (4, -1), (5, -1)]
        assert raw.execute(f'SELECT count(*) FROM "{sweep}"').fetchone() == (53,)
    finally:
        raw.close()


def test_completed_runs_stay_locked_and_open_runs_writable_postgresql():
    schema, url = postgres_schema_url()
    import psycopg

    engine = create_engine(url)
    try:
        upgrade_in_one_transaction(engine, "0004")
        copy_layout1_to(engine)
        upgrade_in_one_transaction(engine)
        with engine.connect() as conn:
            placed = dict(conn.execute(sa.text("SELECT name, results_table FROM runs")).all())
            pks = dict(conn.execute(sa.text("SELECT name, pk FROM runs")).all())
        pg = sa.engine.make_url(url)
        with psycopg.connect(host=pg.host, port=pg.port or 5432, dbname=pg.database,
                             user=pg.username, options=f"-csearch_path={schema}",
                             autocommit=True) as raw:
            sweep, pk = placed["sweep"], pks["sweep"]
            for statement in (
                f'INSERT INTO "{sweep}" ("_qd_run", "_qd_index", "x", "y") '
                f"VALUES ({pk}, 99, 1, 2)",
                f'UPDATE "{sweep}" SET "y" = 0 WHERE "_qd_run" = {pk}',
                f'DELETE FROM "{sweep}" WHERE "_qd_run" = {pk}',
                f'DELETE FROM "{sweep}"',
                f'TRUNCATE "{sweep}"',
                f'INSERT INTO "{placed["empty"]}" ("_qd_run", "_qd_index") '
                f'VALUES ({pks["empty"]}, 0)',
            ):
                with pytest.raises(psycopg.Error) as info:
                    raw.execute(statement)
                assert info.value.sqlstate == "QD001", statement
            table, open_pk = placed["interrupted"], pks["interrupted"]
            raw.execute(f'INSERT INTO "{table}" ("_qd_run", "_qd_index", "k") '
                        f"VALUES ({open_pk}, 5, 50)")
            raw.execute(f'UPDATE "{table}" SET "k" = -1 WHERE "_qd_run" = {open_pk}')
            raw.execute(f'DELETE FROM "{table}" WHERE "_qd_run" = {open_pk} '
                        'AND "_qd_index" = 0')
            assert raw.execute(f'SELECT count(*) FROM "{table}"').fetchone() == (5,)
            raw.execute(f'TRUNCATE "{table}"')  # only an open run's rows
            assert raw.execute(f'SELECT count(*) FROM "{sweep}"').fetchone() == (53,)
    finally:
        engine.dispose()
        drop_postgres_schema(schema)


# -- generated stores: odd names, shared layouts --------------------------------------------


@pytest.mark.parametrize("upgrade", MODES.values(), ids=MODES.keys())
def test_generated_store_upgrades(generated, upgrade):
    with generated.connect() as conn:
        before = contents(conn)
    upgrade(generated)
    assert_upgraded(generated, before)
    with generated.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
        placed = conn.execute(sa.text(
            "SELECT r.name, p.name, p.column_name FROM run_params p "
            "JOIN runs r ON r.pk = p.run_pk")).all()
        per_layout = conn.execute(sa.text(
            "SELECT name, count(DISTINCT results_table) FROM runs GROUP BY name")).all()
    assert count == 20
    assert all(count == 1 for _, count in per_layout)
    columns = {(layout, name): column for layout, name, column in placed}
    # "X"/"Y" runs share the "x"/"y" runs' table and columns (first spelling wins)
    assert columns[("layout1", "X")] == "x" and columns[("layout1", "Y")] == "y"
    # a parameter named like the run key column gets a column of its own
    assert columns[("layout2", "_qd_run")] not in ("_qd_run", "_qd_index")
    assert columns[("layout2", 'a"b%c:d')] == 'a"b%c:d'
    with generated.connect() as conn:
        same = conn.execute(sa.text(
            "SELECT count(DISTINCT results_table) FROM runs "
            "WHERE name IN ('layout0', 'layout1')")).scalar()
    assert same == 1


def test_upgrading_an_upgraded_store_changes_nothing(generated):
    upgrade_in_one_transaction(generated)
    with generated.connect() as conn:
        before = contents(conn)
    upgrade_in_batches(generated)
    upgrade_in_one_transaction(generated)
    assert_upgraded(generated, before)


@pytest.mark.parametrize("upgrade", UPGRADES.values(), ids=UPGRADES.keys())
def test_new_store_gets_the_registry(engine, upgrade):
    """Either way of running Alembic creates the same new store."""
    upgrade(engine)
    assert revision_of(engine) == head_revision()
    assert {"results_tables", "results_columns"} <= tables_of(engine)
    assert "column_name" in {c["name"] for c in sa.inspect(engine).get_columns("run_params")}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM results_tables").scalar() == 0
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            functions = set(conn.exec_driver_sql(
                "SELECT proname FROM pg_proc "
                "WHERE pronamespace = current_schema()::regnamespace").scalars())
        assert functions == {"qdataset_reject_completed_rows", "qdataset_reject_truncate"}


def test_downgrade_refuses_a_store_with_runs_and_undoes_an_empty_one(engine):
    from alembic import command
    from alembic.config import Config

    upgrade_in_one_transaction(engine, "0004")
    write_old_store(engine, 3)
    upgrade_in_one_transaction(engine)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with pytest.raises(NotImplementedError, match="cannot be downgraded automatically"):
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
    assert revision_of(engine) == head_revision()
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM run_params")
        conn.exec_driver_sql("DELETE FROM runs")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert revision_of(engine) == "0004"
    assert not {"results_tables", "results_columns"} & tables_of(engine)
    assert not [t for t in tables_of(engine) if t.startswith("results_l")]
    upgrade_in_one_transaction(engine)  # and up again
    assert revision_of(engine) == head_revision()


# -- interrupted upgrades -------------------------------------------------------------------


class Interrupt(Exception):
    pass


def _interrupt_at_copy(engine: sa.Engine, number: int):
    """Raise at the ``number``-th row copy into a shared table."""
    seen = [0]

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith('INSERT INTO "results_l'):
            seen[0] += 1
            if seen[0] == number:
                raise Interrupt(f"simulated interruption at copy {number}")

    sa.event.listen(engine, "before_cursor_execute", before)
    return lambda: sa.event.remove(engine, "before_cursor_execute", before)


def test_interrupted_single_transaction_upgrade_leaves_the_old_store(generated):
    with generated.connect() as conn:
        before = contents(conn)
    remove = _interrupt_at_copy(generated, 7)
    try:
        with pytest.raises(Interrupt):
            upgrade_in_one_transaction(generated)
    finally:
        remove()
    assert revision_of(generated) == "0004"
    assert not {"results_tables", "results_columns"} & tables_of(generated)
    with generated.connect() as conn:
        assert contents(conn) == before
    upgrade_in_one_transaction(generated)
    assert_upgraded(generated, before)


@pytest.mark.parametrize("again", MODES.values(), ids=MODES.keys())
def test_interrupted_batched_upgrade_resumes(generated, again):
    with generated.connect() as conn:
        before = contents(conn)
    remove = _interrupt_at_copy(generated, 12)  # in the 6th batch of 2 runs
    try:
        with pytest.raises(Interrupt):
            upgrade_in_batches(generated, batch_runs=2)
    finally:
        remove()
    assert revision_of(generated) == "0004"
    with generated.connect() as conn:
        placed = conn.execute(sa.text("SELECT pk, results_table FROM runs ORDER BY pk")).all()
        assert contents(conn) == before  # half moved, nothing lost or doubled
    moved = [pk for pk, table in placed if table != f"results_{pk}"]
    assert moved == list(range(1, 11))  # five batches committed, the sixth rolled back
    assert_every_shared_table_locked(generated)
    again(generated)
    assert_upgraded(generated, before)


_KILLED_CHILD = textwrap.dedent("""
    import sys, time
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config
    from qdataset.store.engine import create_engine
    from qdataset.store.migrate import migrations_dir

    engine = create_engine(sys.argv[1])

    moved = [0]

    @sa.event.listens_for(engine, "before_cursor_execute")
    def slowly(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith('INSERT INTO "results_l'):
            moved[0] += 1
            # After six batches, stall inside the seventh: the parent's kill always
            # lands mid-upgrade, however fast or slow the machine.
            time.sleep(600 if moved[0] > 130 else 0.002)

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["qdataset_upgrade_batch_runs"] = 20
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    print("finished", flush=True)
""")


@pytest.mark.slow
def test_upgrade_killed_mid_way_resumes(engine, tmp_path):
    """SIGKILL of a batched upgrade on a bigger store; the next upgrade finishes it."""
    upgrade_in_one_transaction(engine, "0004")
    write_old_store(engine, 400)
    with engine.connect() as conn:
        before = contents(conn)
    script = tmp_path / "child.py"
    script.write_text(_KILLED_CHILD)
    child = subprocess.Popen([sys.executable, str(script),
                              engine.url.render_as_string(hide_password=False)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    moved = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            # A lock-free read: the child holds the write lock while it stalls.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                if "results_tables" in sa.inspect(conn).get_table_names():
                    moved = ddl(conn, "SELECT count(*) FROM runs "
                                      "WHERE results_table LIKE 'results_l%'").scalar()
            if moved >= 100:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()  # a failed check above must not leave the stalled child behind
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    engine.dispose()  # the next checks see the store as the killed process left it
    assert revision_of(engine) == "0004"
    with engine.connect() as conn:
        placed = conn.exec_driver_sql("SELECT pk, results_table FROM runs").all()
        assert contents(conn) == before
    moved = sum(table != f"results_{pk}" for pk, table in placed)
    assert 100 <= moved < 400 and moved % 20 == 0  # whole batches only
    assert_every_shared_table_locked(engine)
    upgrade_in_one_transaction(engine)
    assert_upgraded(engine, before)


# -- through qdataset itself ----------------------------------------------------------------


def test_connect_upgrades_layout1_and_reads_every_run(tmp_path):
    """connect() upgrades the old file; every run reads back as the old release read it."""
    path = tmp_path / "old.db"
    shutil.copyfile(LAYOUT1, path)
    expected = json.loads((FIXTURES / "layout1.json").read_text())
    with qdataset.connect(path) as store:
        assert {run.id for run in store.runs()} == set(expected)
        for run_id, run in expected.items():
            ds = store.read_dataset(run_id)
            assert ds.name == run["name"]
            assert ds.is_marked_complete == run["completed"]
            assert ds.length == run["length"]
            specs = ds.get_parameters()
            assert [s.to_dict() for s in specs] == run["parameters"]
            meta = {k: v for k, v in ds.get_metadata().items() if k not in ("id", "parameters")}
            assert meta == run["metadata"]
            arrays = ds.get_data(*specs) if specs else []
            for spec, array in zip(specs, arrays, strict=True):
                assert _jsonable(array) == run["values"][spec.name], (run_id, spec.name)


def _jsonable(values: np.ndarray) -> object:
    """As fixtures/make_layout1_store.py wrote the expected values (floats as hex)."""
    mask = np.ma.getmaskarray(values).reshape(len(values), -1).any(axis=1).tolist()
    data = np.ma.getdata(values)
    if data.dtype.kind in "fc":
        flat = data.reshape(len(data), -1)
        view = np.float64 if data.dtype.itemsize in (8, 16) else np.float32
        return {"dtype": str(data.dtype), "hex": [[float(v).hex() for v in row.view(view)]
                                                  for row in flat], "mask": mask}
    return {"dtype": str(data.dtype), "values": data.tolist(), "mask": mask}


def _definitions(engine: sa.Engine, table: str) -> list[str]:
    """The DDL of ``table`` and its triggers, with the table's name taken out."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE tbl_name = :t ORDER BY type, name"),
                {"t": table}).scalars().all()
        else:
            columns = conn.execute(sa.text(
                "SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' || "
                "attnotnull::text FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"),
                {"t": f'"{table}"'}).scalars().all()
            triggers = conn.execute(sa.text(
                "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "WHERE t.tgrelid = to_regclass(:t) AND NOT t.tgisinternal ORDER BY t.tgname"),
                {"t": f'"{table}"'}).scalars().all()
            key = conn.execute(sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = to_regclass(:t) AND contype = 'p'"),
                {"t": f'"{table}"'}).scalars().all()
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            rows = [row.replace(f"{schema}.", "") for row in [*columns, *triggers, *key]]
    return [row.replace(table, "<table>") for row in rows]


def test_moved_tables_are_the_tables_qdataset_makes(layout1, tmp_path):
    """A migrated shared table, its key and its lock are what qdataset itself creates
    for the same layout; new runs of that layout go into it."""
    upgrade_in_one_transaction(layout1)
    with layout1.connect() as conn:
        migrated = conn.execute(sa.text(
            "SELECT results_table FROM runs WHERE name = 'sweep'")).scalars().first()
    specs = [ParamSpec("x", np.float64, role="setpoint", unit="V"),
             ParamSpec("y", np.float64, depends_on=["x"])]
    url = layout1.url.render_as_string(hide_password=False)
    schema = None
    if layout1.dialect.name == "sqlite":
        fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        schema, fresh_url = postgres_schema_url()
    fresh_engine = create_engine(fresh_url)
    try:
        with qdataset.connect(fresh_url) as fresh:
            qdataset.DataSet("sweep", specs, [[1.0], [2.0]], store=fresh).mark_completed()
        with fresh_engine.connect() as conn:
            made = conn.execute(sa.text("SELECT results_table FROM runs")).scalar()
        expected = _definitions(fresh_engine, made)
        assert len(expected) >= 4  # the table (columns, key) and its lock triggers
        assert _definitions(layout1, migrated) == expected
    finally:
        fresh_engine.dispose()
        if schema:
            drop_postgres_schema(schema)
    with qdataset.connect(url) as store:
        ds = qdataset.DataSet("sweep", specs, [[1.0, 2.0], [3.0, 4.0]], store=store)
        ds.mark_completed()
        with layout1.connect() as conn:
            placed = conn.execute(sa.text("SELECT results_table FROM runs WHERE run_id = :i"),
                                  {"i": ds.id}).scalar()
        assert placed == migrated
        old = next(run for run in store.runs(name="sweep") if run.id != ds.id)
        with pytest.raises(qdataset.CompletedError):
            store.read_dataset(old.id).add_result(x=0.0, y=0.0)
        interrupted = next(iter(store.runs(completed=False)))
        again = store.resume_dataset(interrupted.id)  # nobody holds an old run's lease
        again.add_result(k=5)
        again.mark_completed()
        assert again.get_data("k")[0].tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.parametrize("bare_engine", ["postgresql"], indirect=True)
def test_processes_opening_an_old_server_store_at_once_all_succeed(bare_engine):
    """After a pip upgrade every process of a lab opens the shared store at about the
    same moment: one upgrades it (under an advisory lock), the others wait and go on."""
    import subprocess
    import sys

    _upgrade(bare_engine, "0006")
    url = bare_engine.url.render_as_string(hide_password=False)
    code = ("import sys, time, qdataset\n"
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
            "qdataset.connect(sys.argv[1]).close()\n")
    start = str(time.time() + 3.0)  # every process starts its connect() at once
    procs = [subprocess.Popen([sys.executable, "-c", code, url, start],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert revision_of(bare_engine) == head_revision()


# -- opening without upgrading ----------------------------------------------------------------


def test_a_read_only_open_leaves_an_old_store_as_it_is(tmp_path):
    """connect(url, create=False, upgrade=False) refuses an older store with a
    SchemaVersionError that says how to upgrade, and changes no byte of it; a plain
    connect() upgrades it afterwards."""
    path = tmp_path / "old.db"
    shutil.copy(LAYOUT1, path)
    before = path.read_bytes()
    with pytest.raises(qdataset.SchemaVersionError, match=r"does not upgrade it.*connect\(url\)"):
        qdataset.connect(path, create=False, upgrade=False)
    assert path.read_bytes() == before
    with qdataset.connect(path) as store:
        assert len(store.runs()) == len(json.loads(LAYOUT1.with_suffix(".json").read_text()))
    with qdataset.connect(path, create=False, upgrade=False) as store:  # at head now
        assert store.runs()


def test_serve_refuses_to_upgrade_an_old_store(tmp_path, capsys):
    """The web server never writes: on an old store it stops with a one-line error."""
    pytest.importorskip("bokeh", reason="qdataset serve needs the 'web' extra")
    from qdataset.cli import main

    path = tmp_path / "old.db"
    shutil.copy(LAYOUT1, path)
    before = path.read_bytes()
    assert main(["serve", "--url", f"sqlite:///{path}", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qdataset serve: ") and "does not upgrade" in err
    assert err.count("\n") == 1
    assert path.read_bytes() == before
