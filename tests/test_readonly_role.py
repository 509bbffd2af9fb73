"""Issue 13, item 11: a PostgreSQL role that may only read a store.

Against the shared test server: one fresh schema (the store, written by the
test's own role, its owner) and a uniquely named role made read-only by
``grant_read_only``; both are dropped afterwards.  The reader lists, reads,
follows with cursors and subscriptions; every write it tries fails with
ReadOnlyError and stores nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import POSTGRES_URL, drop_postgres_schema, postgres_schema_url

import qdataset
from qdataset import DataSet, ParamSpec, QDatasetError, StoreError
from qdataset.cli import main
from qdataset.errors import ReadOnlyError
from qdataset.store.roles import grant_read_only, read_only_role_sql

#: Seconds to wait for something that takes well under one.
DEADLINE_S = 30.0
#: A password that needs quoting in SQL (and survives psycopg's % placeholders).
PASSWORD = "it's 100% secret"


def specs() -> list[ParamSpec]:
    return [ParamSpec("x", np.float64, role="setpoint"),
            ParamSpec("y", np.float64, depends_on=["x"])]


def _admin(sql: str) -> None:
    """Run ``sql`` on the test database as the test's (owner) role."""
    import psycopg

    url = sa.engine.make_url(POSTGRES_URL)
    with psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                         user=url.username, password=url.password, autocommit=True) as conn:
        conn.execute(sql)


def _drop_role(role: str) -> None:
    _admin(f'DROP OWNED BY "{role}"')  # its grants and default privileges in this database
    _admin(f'DROP ROLE IF EXISTS "{role}"')


class Lab:
    """The store as its owner sees it, and the URL the read-only role connects with."""

    def __init__(self, schema: str, owner_url: str, role: str) -> None:
        self.schema, self.owner_url, self.role = schema, owner_url, role
        self.reader_url = sa.engine.make_url(owner_url).set(
            username=role, password=PASSWORD).render_as_string(hide_password=False)
        self.owner = qdataset.connect(owner_url, flush_interval=0.05)
        done = DataSet("finished", specs(), store=self.owner)
        done.add_results({"x": np.arange(5.0), "y": np.arange(5.0) ** 2})
        done.add_metadata("sample", "S1")
        done.mark_completed()
        self.done_id = done.id


@pytest.fixture(scope="module")
def lab():
    schema, owner_url = postgres_schema_url()
    role = f"qdt_ro_{uuid.uuid4().hex[:10]}"
    lab = None
    try:
        qdataset.connect(owner_url).close()  # the owner creates the store
        assert grant_read_only(owner_url, role, password=PASSWORD) == schema
        lab = Lab(schema, owner_url, role)
        yield lab
    finally:
        if lab is not None:
            lab.owner.close()
        drop_postgres_schema(schema)
        _drop_role(role)


@pytest.fixture
def reader(lab):
    store = qdataset.connect(lab.reader_url, flush_interval=0.05)
    yield store
    store.close()


def owner_counts(lab: Lab) -> tuple[int, int, int]:
    """(runs, metadata rows, queue jobs) in the store, as the owner sees them."""
    with lab.owner.reading() as conn:
        return tuple(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
                     for table in ("runs", "run_metadata", "job_queue"))


# -- what the role is -------------------------------------------------------------------

def test_the_statements_quote_names_and_passwords():
    statements = read_only_role_sql('od"d', "my schema", password="a'b")
    assert statements[0] == ('CREATE ROLE "od""d" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                             "NOREPLICATION PASSWORD 'a''b'")
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "my schema" TO "od""d"' in statements
    assert ('ALTER DEFAULT PRIVILEGES IN SCHEMA "my schema" GRANT SELECT ON TABLES TO "od""d"'
            in statements)
    assert not any("INSERT" in s and s.startswith("GRANT") for s in statements)
    assert read_only_role_sql("r", "s", exists=True)[0].startswith('ALTER ROLE "r" LOGIN')


def test_the_role_may_select_and_nothing_else(lab):
    with lab.owner.reading() as conn:
        rights = conn.exec_driver_sql(
            "SELECT c.relname, has_table_privilege(%(r)s, c.oid, 'SELECT'),"
            " has_table_privilege(%(r)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')"
            " FROM pg_class c WHERE c.relnamespace = %(s)s::regnamespace"
            " AND c.relkind = 'r'", {"r": lab.role, "s": lab.schema}).all()
        may_create = conn.exec_driver_sql(
            "SELECT has_schema_privilege(%(r)s, %(s)s, 'CREATE')",
            {"r": lab.role, "s": lab.schema}).scalar()
    assert {"runs", "alembic_version"} <= {name for name, _, _ in rights}
    assert all(select and not write for _, select, write in rights), rights
    assert may_create is False


def test_a_role_that_may_write_is_refused_and_left_unchanged(lab):
    member = f"qdt_ro_{uuid.uuid4().hex[:10]}"
    owner = lab.owner.engine.url.username
    if owner is None:
        import getpass

        owner = getpass.getuser()
    _admin(f'CREATE ROLE "{member}"')
    try:
        _admin(f'GRANT "{owner}" TO "{member}"')  # inherits the owner's rights
        with pytest.raises(StoreError, match="may still write") as raised:
            grant_read_only(lab.owner, member)  # a Store works as well as a URL
        assert member in str(raised.value)
        with lab.owner.reading() as conn:  # all or nothing: not even LOGIN was set
            assert conn.exec_driver_sql(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %(r)s",
                {"r": member}).scalar() is False
    finally:
        _drop_role(member)


# -- reading works ----------------------------------------------------------------------

def test_connect_lists_and_reads_without_writing(lab, reader):
    # connect() (create=True, the default) found the schema at head and wrote nothing:
    # the role's sessions are read-only, so any write there would have failed.
    assert lab.done_id in [run.id for run in reader.runs()]
    assert [r.length for r in reader.runs(completed=True) if r.id == lab.done_id] == [5]
    view = reader.read_dataset(lab.done_id)
    xs, ys = view.get_data("x", "y")
    np.testing.assert_array_equal(xs, np.arange(5.0))
    np.testing.assert_array_equal(ys, np.arange(5.0) ** 2)
    assert view.get_metadata("sample") == "S1" and view.is_marked_complete
    with qdataset.connect(lab.reader_url, create=False) as again:
        assert again.read_dataset(lab.done_id).length == 5


def test_a_cursor_of_the_reader_sees_rows_the_owner_adds(lab, reader):
    ds = DataSet("followed", specs(), store=lab.owner)
    ds.add_results({"x": [0.0, 1.0], "y": [0.0, 1.0]})
    ds.flush()
    cursor = reader.read_dataset(ds.id).cursor(0)
    xs, _ = cursor.read("x", "y")
    np.testing.assert_array_equal(xs, [0.0, 1.0])
    ds.add_results({"x": [2.0, 3.0, 4.0], "y": [4.0, 9.0, 16.0]})
    ds.flush()
    xs, ys = cursor.read("x", "y")
    np.testing.assert_array_equal(xs, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(ys, [4.0, 9.0, 16.0])
    assert cursor.position == 5
    ds.mark_completed()


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import qdataset
    from qdataset import DataSet, ParamSpec

    with qdataset.connect(sys.argv[1], flush_interval=0.05) as store:
        ds = DataSet("remote", [ParamSpec("x", np.float64)], store=store)
        print(ds.id, flush=True)
        sys.stdin.readline()  # the test subscribed
        for block in range(4):
            ds.add_results({"x": np.arange(block * 10, block * 10 + 10, dtype=float)})
            ds.flush()
        ds.mark_completed()
""")


@pytest.mark.slow
def test_a_subscription_of_the_reader_follows_a_run_written_by_another_process(lab, reader):
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, lab.owner_url],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = writer.stdout.readline().strip()
        assert run_id, "the writer process printed no run id"
        view = reader.read_dataset(run_id)
        calls: list[int] = []
        finished = threading.Event()

        def on_rows(dataset, length, state):
            calls.append(length)
            if length == 40 and dataset.is_marked_complete:
                finished.set()

        view.subscribe(on_rows, min_wait=20)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert finished.wait(DEADLINE_S), f"no call for the completed run; calls: {calls}"
        assert calls == sorted(calls) and calls[-1] == 40
        assert writer.wait(DEADLINE_S) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


# -- writing fails, says why, and stores nothing -------------------------------------------

@pytest.fixture(params=["read-only sessions", "privileges only"])
def refusing_reader(request, lab):
    """The reader as granted, and with its sessions' read-only default removed: then
    the missing privileges alone refuse (SQLSTATE 42501 instead of 25006)."""
    if request.param == "privileges only":
        _admin(f'ALTER ROLE "{lab.role}" RESET default_transaction_read_only')
    store = qdataset.connect(lab.reader_url, flush_interval=0.05)
    try:
        yield store
    finally:
        store.close()
        _admin(f'ALTER ROLE "{lab.role}" SET default_transaction_read_only = on')


def assert_read_only(raised: pytest.ExceptionInfo, lab: Lab) -> None:
    message = str(raised.value)
    assert isinstance(raised.value, StoreError)
    assert "read-only" in message and lab.role in message
    assert "connect as a role that may write" in message
    assert PASSWORD not in message


def test_creating_a_run_is_refused(lab, refusing_reader):
    before = owner_counts(lab)
    with pytest.raises(ReadOnlyError) as raised:
        DataSet("not allowed", specs(), store=refusing_reader)
    assert_read_only(raised, lab)
    assert owner_counts(lab) == before


def test_metadata_is_refused(lab, refusing_reader):
    view = refusing_reader.read_dataset(lab.done_id)
    with pytest.raises(ReadOnlyError) as raised:
        view.add_metadata("note", "written by a reader")
    assert_read_only(raised, lab)
    assert "note" not in lab.owner.read_dataset(lab.done_id).get_metadata()


def test_copying_a_run_in_is_refused(lab, refusing_reader, tmp_path):
    with qdataset.connect(tmp_path / "local.db") as local:
        ds = DataSet("measured offline", specs(), [[1.0, 2.0], [3.0, 4.0]], store=local)
        ds.mark_completed()
        before = owner_counts(lab)
        with pytest.raises(ReadOnlyError) as raised:
            refusing_reader.copy_run_from(local, ds.id)
        assert_read_only(raised, lab)
        assert ds.id not in [run.id for run in lab.owner.runs()]
        assert owner_counts(lab) == before


def test_submitting_a_queue_job_is_refused(lab, refusing_reader):
    from qdataset.jobs import JobQueue

    JobQueue(lab.owner).upload_config("aer-ro", {"max_shots": 100})
    before = owner_counts(lab)
    with pytest.raises(QDatasetError) as raised:
        JobQueue(refusing_reader).submit("aer-ro", {"shots": 10}, username="viewer")
    assert isinstance(raised.value, ReadOnlyError), repr(raised.value)
    assert_read_only(raised, lab)
    assert owner_counts(lab) == before


def abandoned_run(lab: Lab) -> str:
    """An incomplete run whose writer is gone."""
    with qdataset.connect(lab.owner_url) as gone:
        return DataSet("abandoned", specs(), [[1.0], [2.0]], store=gone).id


def test_completing_an_abandoned_run_is_refused(lab, refusing_reader):
    run_id = abandoned_run(lab)
    with pytest.raises(ReadOnlyError) as raised:
        refusing_reader.read_dataset(run_id).mark_completed()
    assert_read_only(raised, lab)
    assert [r.completed for r in lab.owner.runs() if r.id == run_id] == [False]


def test_resuming_an_abandoned_run_is_refused(lab, refusing_reader):
    if not hasattr(refusing_reader, "resume_dataset"):
        pytest.skip("store.resume_dataset (issue 13 item 2) is not in this tree yet")
    run_id = abandoned_run(lab)
    with pytest.raises(ReadOnlyError) as raised:
        refusing_reader.resume_dataset(run_id)
    assert_read_only(raised, lab)
    assert [(r.completed, r.length) for r in lab.owner.runs() if r.id == run_id] \
        == [(False, 1)]


# -- the command ------------------------------------------------------------------------

def test_the_command_grants_and_explains_its_refusals(lab, capsys, tmp_path):
    role = f"qdt_ro_{uuid.uuid4().hex[:10]}"
    try:
        assert main(["grant-read-only", role, "--url", lab.owner_url]) == 0
        out = capsys.readouterr().out
        assert role in out and lab.schema in out
        assert main(["grant-read-only", role, "--url", lab.owner_url,
                     "--password", PASSWORD]) == 0  # again: updates the role
        capsys.readouterr()
        with qdataset.connect(sa.engine.make_url(lab.owner_url).set(username=role)
                              .render_as_string(hide_password=False)) as store:
            assert lab.done_id in [run.id for run in store.runs()]
            with pytest.raises(ReadOnlyError):
                DataSet("no", specs(), store=store)
    finally:
        _drop_role(role)

    sqlite_file = tmp_path / "lab.db"
    qdataset.connect(sqlite_file).close()
    assert main(["grant-read-only", "viewer", "--url", str(sqlite_file)]) == 2
    err = capsys.readouterr().err
    assert "SQLite has no roles" in err and "permission" in err and len(err.splitlines()) == 1

    superuser = sa.engine.make_url(lab.owner_url).username
    if superuser is None:  # the test connects as the OS user
        import getpass

        superuser = getpass.getuser()
    assert main(["grant-read-only", superuser, "--url", lab.owner_url]) == 2
    assert "cannot be made read-only" in capsys.readouterr().err


def test_a_store_needing_an_upgrade_tells_the_reader_to_connect_as_its_owner(lab):
    from qdataset.store.migrate import head_revision

    head = head_revision()
    with lab.owner.transaction() as conn:  # as if an older qdataset had written it
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0006'")
    try:
        with pytest.raises(ReadOnlyError, match="connect once as the store's owner"):
            qdataset.connect(lab.reader_url)
    finally:
        with lab.owner.transaction() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
