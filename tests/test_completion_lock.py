"""The completion lock is enforced by the database, for every connection."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import snapshot, stored

import qdataset
from qdataset import CompletedError, DataSet, ParamSpec


def _results_table(store, run_id: str) -> str:
    return _where(store, run_id)[0]


def _where(store, run_id: str) -> tuple[str, int]:
    """(shared results table, run key) of a run: its rows are ``_qd_run = key``."""
    with store.engine.connect() as conn:
        table, pk = conn.execute(
            sa.text("SELECT results_table, pk FROM runs WHERE run_id = :id"), {"id": run_id}
        ).one()
    return table, pk


def _assert_raw_insert_refused(path, table: str, pk: int, index: int,
                               values: dict[str, float]) -> None:
    """A plain sqlite3 connection cannot add row ``index`` to completed run ``pk``."""
    names = ", ".join(f'"{n}"' for n in values)
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="completed"):
            raw.execute(f'INSERT INTO "{table}" ("_qd_run", "_qd_index", {names}) '
                        f"VALUES ({pk}, {index}, {', '.join(map(str, values.values()))})")
    finally:
        raw.close()


@pytest.fixture
def done(store, xy_specs):
    ds = DataSet("done", xy_specs, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], store=store)
    ds.mark_completed()
    return ds


def test_raw_sqlite3_cannot_change_a_completed_run(tmp_path, xy_specs):
    path = tmp_path / "lock.db"
    with qdataset.connect(path) as store:
        ds = DataSet("done", xy_specs, [[1.0, 2.0], [3.0, 4.0]], store=store)
        open_ds = DataSet("open", xy_specs, [[1.0], [3.0]], store=store)
        ds.mark_completed()
        table, pk = _where(store, ds.id)
        open_table, open_pk = _where(store, open_ds.id)
        assert open_table == table  # one layout, one shared table
        before = snapshot(ds)
        raw = sqlite3.connect(path)
        try:
            run = f'"_qd_run" = {pk}'
            statements = [
                f'INSERT INTO "{table}" ("_qd_run", "_qd_index", "x", "y") '
                f"VALUES ({pk}, 2, 9.0, 9.0)",
                f'UPDATE "{table}" SET "y" = 0.0 WHERE {run}',
                f'UPDATE "{table}" SET "_qd_index" = "_qd_index" + 10 WHERE {run}',
                f'UPDATE "{table}" SET "_qd_run" = {open_pk} WHERE {run}',
                f'DELETE FROM "{table}" WHERE {run}',
                f'DELETE FROM "{table}" WHERE {run} AND "_qd_index" = 0',
                f'DELETE FROM "{table}"',  # every run's rows, the completed one's included
                f'INSERT OR REPLACE INTO "{table}" ("_qd_run", "_qd_index", "x", "y") '
                f"VALUES ({pk}, 0, 9.0, 9.0)",
            ]
            for sql in statements:
                with pytest.raises(sqlite3.DatabaseError, match="completed"):
                    raw.execute(sql)
                raw.rollback()
            # the run that is still open accepts writes
            raw.execute(f'UPDATE "{open_table}" SET "y" = 7.0 WHERE "_qd_run" = {open_pk}')
            raw.commit()
        finally:
            raw.close()
        assert snapshot(ds) == before == stored(store, ds.id)
        assert store.read_dataset(open_ds.id).get_data("y")[0].tolist() == [7.0]


def test_second_connect_cannot_change_a_completed_run(store, done):
    before = snapshot(done)
    table, pk = _where(store, done.id)
    with qdataset.connect(store.url) as other:
        for sql in [f'INSERT INTO "{table}" ("_qd_run", "_qd_index", "x", "y") '
                    f"VALUES ({pk}, 3, 1.0, 1.0)",
                    f'UPDATE "{table}" SET "x" = 0.0 WHERE "_qd_run" = {pk}',
                    f'DELETE FROM "{table}" WHERE "_qd_run" = {pk}']:
            with pytest.raises(sa.exc.DBAPIError), other.engine.begin() as conn:
                conn.exec_driver_sql(sql)
        view = other.read_dataset(done.id)
        assert view.is_marked_complete
        with pytest.raises(CompletedError, match=done.id):
            view.add_result(x=1.0, y=1.0)
        with pytest.raises(CompletedError):
            view.add_results({"x": [1.0], "y": [1.0]})
        with pytest.raises(CompletedError):
            view.modify_result(0, y=None)
        with pytest.raises(CompletedError):
            view.add_parameter(ParamSpec("w", np.float64))
        view.add_metadata("analysis", {"fit": 1.0})  # metadata stays writable
    assert snapshot(done) == before == stored(store, done.id)
    assert done.get_metadata("analysis") == {"fit": 1.0}


def test_writer_that_missed_the_completion_is_stopped_by_the_database(store_url, xy_specs):
    a = qdataset.connect(store_url, flush_interval=60)
    ds = DataSet("race", xy_specs, [[1.0, 2.0], [3.0, 4.0]], store=a)
    assert ds.add_result(x=5.0, y=6.0) == 2  # buffered, not yet flushed
    # Completed behind the writer's back, by plain SQL (no Python object can stop that):
    with a.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET completed_at = 1 WHERE run_id = :i"),
                     {"i": ds.id})
    with pytest.raises(CompletedError):
        ds.flush()
    with pytest.raises(CompletedError):  # told on every later call, nothing accepted
        ds.add_result(x=7.0, y=8.0)
    assert stored(a, ds.id)[0] == 2
    assert ds.unwritten_results()["x"].tolist() == [5.0]  # kept, not dropped
    with pytest.raises(qdataset.FlushError, match="rescue file"):
        a.close()


def test_rows_cannot_be_moved_into_a_completed_run(store, done, xy_specs):
    """The lock checks both sides of an UPDATE: an open run's rows may not be moved
    into a completed run (which would change the completed run's results)."""
    open_ds = DataSet("open", xy_specs, [[7.0], [8.0]], store=store)
    table, pk = _where(store, done.id)
    open_table, open_pk = _where(store, open_ds.id)
    assert table == open_table
    before = snapshot(done)
    with pytest.raises(sa.exc.DBAPIError, match="completed"), store.engine.begin() as conn:
        conn.exec_driver_sql(f'UPDATE "{table}" SET "_qd_run" = {pk}, "_qd_index" = 99 '
                             f'WHERE "_qd_run" = {open_pk}')
    assert snapshot(done) == before
    assert open_ds.get_data("x")[0].tolist() == [7.0]


def test_completed_run_metadata_writable_everywhere(store, done):
    done.add_metadata("note", "after")
    with qdataset.connect(store.url) as other:
        assert other.read_dataset(done.id).get_metadata("note") == "after"


WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import qdataset
    from qdataset import DataSet, ParamSpec
    store = qdataset.connect(sys.argv[1], flush_interval=60)
    ds = DataSet("died", [ParamSpec("x", np.float64)], store=store)
    for i in range(5):
        ds.add_result(x=float(i))
    ds.flush()
    ds.add_result(x=99.0)  # never flushed: the process dies
    print(ds.id, flush=True)
    os._exit(0)
""")


@pytest.mark.slow
def test_run_of_a_dead_writer_stays_incomplete_and_can_be_completed(tmp_path):
    url = f"sqlite:///{tmp_path / 'dead.db'}"
    out = subprocess.run([sys.executable, "-c", WRITER, url], capture_output=True, text=True,
                         timeout=60, check=True)
    run_id = out.stdout.strip()
    with qdataset.connect(url) as store:
        assert [r.id for r in store.runs(completed=False)] == [run_id]
        assert store.runs(completed=True) == []
        ds = store.resume_dataset(run_id)  # its writer's pid is dead: free at once
        assert not ds.is_marked_complete
        assert ds.get_data("x")[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        ds.add_result(x=5.0)  # a later process may continue it
        ds.mark_completed()
        assert ds.is_marked_complete
        table, pk = _where(store, run_id)
    with qdataset.connect(url) as store:
        (info,) = store.runs()
        assert info.completed and info.length == 6
    _assert_raw_insert_refused(tmp_path / "dead.db", table, pk, 6, {"x": 1.0})


# -- big appends lift the INSERT trigger inside their own transaction (SQLite) --------------
def _sql(path, query: str) -> list[tuple]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute(query).fetchall()
    finally:
        raw.close()


def _lock_triggers(path) -> dict[str, str]:
    return dict(_sql(path, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                           "AND name LIKE '%_lock_%'"))


def _schema_version(path) -> int:
    return _sql(path, "PRAGMA schema_version")[0][0]


def _lifting(path) -> int:
    """Rows an append needs for its INSERT trigger to be lifted in this store now."""
    from qdataset.store.sqlite import LIFT_LOCK_ROWS, LIFT_ROWS_PER_SCHEMA_OBJECT

    objects = _sql(path, "SELECT count(*) FROM sqlite_master")[0][0]
    return max(LIFT_LOCK_ROWS, LIFT_ROWS_PER_SCHEMA_OBJECT * objects)


def _big(rows: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(rows, dtype=np.float64), "y": np.ones(rows)}


def test_big_appends_lift_the_trigger_and_leave_the_lock_as_it_was(tmp_path, xy_specs):
    """Bulk writes and big flushes drop and re-create the INSERT trigger (the schema
    version moves by two), keep every trigger's SQL unchanged, and the run they wrote
    is locked once completed."""
    path = tmp_path / "lift.db"
    with qdataset.connect(path, flush_interval=60) as store:
        first = DataSet("first", xy_specs, store=store)  # creates the shared table
        before, version = _lock_triggers(path), _schema_version(path)
        assert len(before) == 3
        rows = _lifting(path)
        first.add_results(_big(rows))  # bulk path
        assert _schema_version(path) == version + 2
        for i in range(rows):  # one flush of a big buffer
            first.add_result(x=float(i), y=2.0)
        first.flush()
        assert _schema_version(path) == version + 4
        assert _lock_triggers(path) == before
        first.mark_completed()
        table, pk = _where(store, first.id)
    _assert_raw_insert_refused(path, table, pk, 999999, {"x": 9.0, "y": 9.0})
    assert _lock_triggers(path) == before


def test_smaller_appends_and_big_schemas_keep_the_trigger(tmp_path, xy_specs):
    """Below the row threshold, or in a store whose schema makes other connections'
    re-reads dear, the trigger stays and the schema is not touched."""
    from qdataset.store.sqlite import LIFT_LOCK_ROWS

    path = tmp_path / "keep.db"
    with qdataset.connect(path) as store:
        ds = DataSet("small", xy_specs, store=store)
        version = _schema_version(path)
        ds.add_results(_big(LIFT_LOCK_ROWS - 1))
        # Many layouts: 40 tables, each with its triggers, make the schema big.
        for k in range(40):
            DataSet(f"layout{k}", [ParamSpec(f"p{k}_{j}", np.float64) for j in range(70)],
                    store=store)
        grown = _schema_version(path)
        assert grown > version
        rows = _lifting(path)
        assert rows > LIFT_LOCK_ROWS
        ds.add_results(_big(rows - 1))
        assert _schema_version(path) == grown
        ds.add_results(_big(rows))
        assert _schema_version(path) == grown + 2
        assert ds.length == LIFT_LOCK_ROWS - 1 + 2 * rows - 1


def test_bytes_of_array_values_count_towards_a_lift(tmp_path):
    """The trigger copies each new row, so an append of big traces lifts it with
    fewer rows: every LIFT_BYTES_PER_ROW bytes of values count as one more row."""
    from qdataset.store.sqlite import LIFT_BYTES_PER_ROW, LIFT_LOCK_ROWS

    path = tmp_path / "traces.db"
    points = 1024  # 8 kB a trace
    specs = [ParamSpec("s", np.float64, role="setpoint"),
             ParamSpec("trace", np.float64, shape=(points,), depends_on=["s"])]
    per_row = 1 + points * 8 // LIFT_BYTES_PER_ROW
    with qdataset.connect(path, flush_interval=60) as store:
        ds = DataSet("traces", specs, store=store)
        rows = -(-_lifting(path) // per_row)  # rounded up
        assert rows < LIFT_LOCK_ROWS
        version = _schema_version(path)
        ds.add_results({"s": np.arange(5.0), "trace": np.ones((5, points))})
        assert _schema_version(path) == version  # 5 traces: the trigger stays
        for k in range(rows):  # row by row, one flush
            ds.add_result(s=float(k), trace=np.full(points, float(k)))
        ds.flush()
        assert _schema_version(path) == version + 2
        ds.add_results({"s": np.arange(rows, dtype=float), "trace": np.ones((rows, points))})
        assert _schema_version(path) == version + 4
        traces = store.read_dataset(ds.id).get_data("trace")[0]
    assert traces.shape == (5 + 2 * rows, points)
    assert traces[5:5 + rows, 0].tolist() == [float(k) for k in range(rows)]


def test_while_a_big_append_runs_other_connections_see_the_lock_and_cannot_write(
        tmp_path, xy_specs, monkeypatch):
    """In the middle of a big append (its trigger dropped in its transaction), another
    connection still reads the schema with the trigger and cannot write at all."""
    from qdataset.store.sqlite import SqliteDialect

    path = tmp_path / "middle.db"
    seen: list[tuple[dict[str, str], int, str]] = []
    original = SqliteDialect.insert_many

    def insert_and_look(self, cursor, *args, **kwargs):
        if not seen:
            mine = cursor.execute("SELECT count(*) FROM sqlite_master "
                                  "WHERE name LIKE '%_lock_insert'").fetchone()[0]
            other = sqlite3.connect(path, timeout=0.05)
            try:
                other.execute(f'DELETE FROM "{table}"')
                outcome = "wrote"
            except sqlite3.OperationalError as exc:
                outcome = str(exc)
            finally:
                other.close()
            seen.append((_lock_triggers(path), mine, outcome))
        return original(self, cursor, *args, **kwargs)

    with qdataset.connect(path) as store:
        ds = DataSet("bulk", xy_specs, store=store)
        table, _ = _where(store, ds.id)
        before, rows = _lock_triggers(path), _lifting(path)
        monkeypatch.setattr(SqliteDialect, "insert_many", insert_and_look)
        ds.add_results(_big(rows))
        monkeypatch.undo()
        assert ds.length == rows
    # The writer's own transaction had no INSERT trigger; others saw it all along.
    assert seen == [(before, 0, "database is locked")]


def test_a_big_append_that_fails_rolls_back_with_its_lock(tmp_path, xy_specs, monkeypatch):
    """An append failing after its trigger was dropped stores nothing, and the
    trigger is there: the drop was part of the transaction that rolled back."""
    from qdataset.store.sqlite import SqliteDialect

    path = tmp_path / "fail.db"
    with qdataset.connect(path) as store:
        ds = DataSet("bulk", xy_specs, store=store)
        ds.add_result(x=1.0, y=1.0)
        ds.flush()
        before, version, rows = _lock_triggers(path), _schema_version(path), _lifting(path)
        dropped = []

        def fail(self, cursor, *args, **kwargs):
            dropped.append(cursor.execute("SELECT count(*) FROM sqlite_master "
                                          "WHERE name LIKE '%_lock_insert'").fetchone()[0])
            raise sqlite3.OperationalError("disk I/O error (injected)")

        monkeypatch.setattr(SqliteDialect, "insert_many", fail)
        with pytest.raises(Exception, match="injected"):
            ds.add_results(_big(rows))
        monkeypatch.undo()
        assert dropped == [0]  # it failed with the trigger lifted
        assert _lock_triggers(path) == before and _schema_version(path) == version
        assert stored(store, ds.id) == (1, {"x": [1.0], "y": [1.0]})
        ds.add_results(_big(rows))  # the run goes on
        assert ds.length == rows + 1


def test_a_run_completed_behind_its_writers_back_takes_no_big_append(tmp_path, xy_specs):
    """The writer's claim, not the lifted trigger, is what refuses a completed run: a
    run marked completed in the database (by any means) takes no more rows, however
    many come at once."""
    path = tmp_path / "claim.db"
    with qdataset.connect(path) as store:
        ds = DataSet("bulk", xy_specs, store=store)
        ds.add_result(x=1.0, y=1.0)
        ds.flush()
        raw = sqlite3.connect(path)
        raw.execute("UPDATE runs SET completed_at = 1.0 WHERE run_id = ?", (ds.id,))
        raw.commit()
        raw.close()
        with pytest.raises(CompletedError):
            ds.add_results(_big(_lifting(path)))
        assert stored(store, ds.id)[1]["x"] == [1.0]


#: A writer that stops dead (the test SIGKILLs it) in the middle of a lifted append:
#: its rows are inserted and its INSERT trigger dropped, nothing committed yet.
_KILLED_MID_LIFT = textwrap.dedent("""
    import sqlite3, sys, time
    import numpy as np
    import qdataset
    from qdataset import DataSet, ParamSpec
    from qdataset.store import sqlite as engine

    store = qdataset.connect(sys.argv[1])
    ds = DataSet("killed", [ParamSpec("x", np.float64)], store=store)
    ds.add_result(x=-1.0)
    ds.flush()
    raw = sqlite3.connect(sys.argv[1])
    objects = raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    raw.close()
    rows = max(engine.LIFT_LOCK_ROWS, engine.LIFT_ROWS_PER_SCHEMA_OBJECT * objects)
    original = engine.SqliteDialect.insert_many

    def insert_then_stall(self, cursor, *args, **kwargs):
        original(self, cursor, *args, **kwargs)
        left = cursor.execute("SELECT count(*) FROM sqlite_master "
                              "WHERE name LIKE '%_lock_insert'").fetchone()[0]
        print(ds.id, "lifted" if left == 0 else "not lifted", flush=True)
        time.sleep(120)

    engine.SqliteDialect.insert_many = insert_then_stall
    ds.add_results({"x": np.arange(rows, dtype=float)})
""")


def test_a_writer_killed_with_the_trigger_lifted_leaves_the_lock_and_its_rows_whole(
        tmp_path):
    """SIGKILL while an append has dropped its INSERT trigger: SQLite rolls the
    transaction back, so the trigger is there, the run holds exactly the rows
    committed before, and once completed it is locked against everyone."""
    import signal

    path = tmp_path / "killed.db"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MID_LIFT, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert len(line) == 2 and line[1] == "lifted", line
    run_id = line[0]
    assert len(_lock_triggers(path)) == 3
    with qdataset.connect(path) as store:
        resumed = store.resume_dataset(run_id)  # its writer is dead
        assert resumed.length == 1 and resumed.get_data("x")[0].tolist() == [-1.0]
        resumed.add_result(x=0.0)
        resumed.mark_completed()
        table, pk = _where(store, run_id)
    _assert_raw_insert_refused(path, table, pk, 2, {"x": 1.0})
