"""Shared fixtures: a fresh store per test, on SQLite and on PostgreSQL.

The PostgreSQL server is found at ``$QDATASET_TEST_POSTGRES_URL`` (default:
the local server, database ``test``).  Each test gets its own schema, dropped
afterwards.  Where no server answers, the PostgreSQL variants skip and say why.

Speed: creating a store runs every migration (about 0.2 s on SQLite, 0.5 s of DDL
on PostgreSQL), which for ~850 tests was most of the suite's time.  So
``store_url`` hands out copies of a store migrated once per session: on SQLite a
copy of a template file; on PostgreSQL a schema that a previous test used and
that was then emptied, and reused only if it is indistinguishable from a freshly
migrated one (same tables, columns, indexes, sequences, triggers, functions and
types, same Alembic revision; tables emptied, sequences restarted); otherwise it
is dropped and a new one migrated.  ``sqlite_url`` stays a path with no file, for
tests of creation and migration themselves.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pytest

import qdataset
from qdataset import ParamSpec

POSTGRES_URL = os.environ.get(
    "QDATASET_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)


@lru_cache(maxsize=1)
def postgres_problem() -> str | None:
    """None if the PostgreSQL test server answers, else why not."""
    try:
        import psycopg  # noqa: F401 - only: is it installed?
    except ImportError:
        return "psycopg is not installed (pip install 'qdataset[postgres]')"
    import sqlalchemy as sa

    try:
        _pg_server(connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return (f"no PostgreSQL server answers at "
                f"{sa.engine.make_url(POSTGRES_URL).render_as_string()} ({exc}); "
                "start one or set QDATASET_TEST_POSTGRES_URL")
    return None


def _pg_server(**kwargs):
    """A psycopg connection to the test server (POSTGRES_URL), with ``kwargs``."""
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(POSTGRES_URL)
    return psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                           user=url.username, password=url.password, **kwargs)


def postgres_schema_url() -> tuple[str, str]:
    """A fresh schema on the test server and a URL whose search_path points at it;
    the test skips, saying why, when no server answers."""
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    schema = f"qdt_{uuid.uuid4().hex[:12]}"
    with _pg_server(autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def drop_postgres_schema(schema: str) -> None:
    with _pg_server(autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- migrated stores, made once and handed out fresh ---------------------------------------

#: What a freshly migrated PostgreSQL schema holds (see _schema_inventory); set once.
_pg_fresh: dict[str, object] = {}
#: Schemas emptied back to that state, ready for the next test, and resets under way:
#: a used schema is emptied on a background thread while the next test (usually the
#: SQLite variant) runs.
_pg_ready: list[tuple[str, str]] = []
_pg_resetting: deque[Future] = deque()
_pg_made = [0]  # schemas migrated so far
_pg_resetter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conftest-pg-reset")

_INVENTORY = """
    SELECT 'relation', relkind::text || ' ' || relname::text FROM pg_class
     WHERE relnamespace = current_schema()::regnamespace
    UNION ALL
    SELECT 'column', c.relname::text || '.' || a.attname::text || ' '
           || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
           || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
       AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint', conname::text || ' ' || contype::text FROM pg_constraint
     WHERE connamespace = current_schema()::regnamespace
    UNION ALL
    SELECT 'trigger', c.relname::text || ' ' || t.tgname::text FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'function', proname::text || ' ' || md5(prosrc) FROM pg_proc
     WHERE pronamespace = current_schema()::regnamespace
    UNION ALL
    SELECT 'type', typname::text FROM pg_type
     WHERE typnamespace = current_schema()::regnamespace
"""


#: pg_class.relkind -> what DROP calls it (indexes and TOAST go with their tables).
_DROP = {"r": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def _schema_inventory(conn) -> dict[str, object]:
    """Every object of the connection's current schema, and its Alembic revision."""
    objects = frozenset(tuple(row) for row in conn.execute(_INVENTORY).fetchall())
    revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    tables = sorted(name.split(" ", 1)[1] for kind, name in objects
                    if kind == "relation" and name.startswith("r "))
    sequences = sorted(name.split(" ", 1)[1] for kind, name in objects
                       if kind == "relation" and name.startswith("S "))
    relations = {name for kind, name in objects if kind == "relation"}
    return {"objects": objects, "revision": revision, "tables": tables,
            "sequences": sequences, "relations": relations}


def _pg_connect(schema: str, **kwargs):
    return _pg_server(options=f"-csearch_path={schema}", **kwargs)


def _pg_migrated_schema() -> tuple[str, str]:
    """A schema holding an empty store at the current head: reused, or made now."""
    # Two schemas take turns: one is emptied while the other serves a test.
    while not _pg_ready and _pg_resetting and _pg_made[0] >= 2:
        _pg_resetting.popleft().result()
    if _pg_ready:
        return _pg_ready.pop()
    _pg_made[0] += 1
    schema, url = postgres_schema_url()
    qdataset.connect(url).close()  # runs the migrations
    if not _pg_fresh:
        with _pg_connect(schema) as conn:
            _pg_fresh.update(_schema_inventory(conn))
    return schema, url


def _pg_reset(schema: str) -> str | None:
    """Empty ``schema`` back to the freshly migrated state and give it a new name.

    The rename makes a connection the test leaked (its search_path names the schema)
    fail as it would after a drop, instead of writing into the next test's store.
    None if the schema cannot be made fresh.
    """
    renamed = f"qdt_{uuid.uuid4().hex[:12]}"
    try:
        with _pg_connect(schema, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")  # a test left a connection holding locks
            with conn.transaction():
                for relkind, name in conn.execute(
                        "SELECT relkind::text, relname::text FROM pg_class"
                        " WHERE relnamespace = current_schema()::regnamespace").fetchall():
                    if relkind in _DROP and f"{relkind} {name}" not in _pg_fresh["relations"]:
                        # the runs' results tables (with their completion locks), mostly
                        conn.execute(f'DROP {_DROP[relkind]} IF EXISTS "{name}" CASCADE')
                tables = [t for t in _pg_fresh["tables"] if t != "alembic_version"]
                try:
                    with conn.transaction():  # DELETE is far cheaper than TRUNCATE on tiny
                        conn.execute("SET LOCAL session_replication_role = replica;"  # no FKs
                                     + "".join(f'DELETE FROM "{t}";' for t in tables))
                except Exception:  # noqa: BLE001 - not a superuser
                    conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
                if _pg_fresh["sequences"]:
                    conn.execute("".join(f'ALTER SEQUENCE "{seq}" RESTART;'
                                         for seq in _pg_fresh["sequences"]))
                now = _schema_inventory(conn)
                if now["objects"] != _pg_fresh["objects"] or \
                        now["revision"] != _pg_fresh["revision"]:
                    return None
                conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{renamed}"')
    except Exception:  # noqa: BLE001 - any doubt: drop the schema and make a new one
        return None
    return renamed


def _pg_release(schema: str) -> None:
    """Empty the schema for reuse (on the background thread), or drop it."""
    def release() -> None:
        renamed = _pg_reset(schema) if _pg_fresh else None
        if renamed:
            _pg_ready.append((renamed, f"{POSTGRES_URL}?options=-csearch_path%3D{renamed}"))
        else:
            drop_postgres_schema(schema)

    _pg_resetting.append(_pg_resetter.submit(release))


@pytest.fixture(scope="session", autouse=True)
def _drop_ready_schemas():
    yield
    while _pg_resetting:
        _pg_resetting.popleft().result()
    _pg_resetter.shutdown()
    while _pg_ready:
        drop_postgres_schema(_pg_ready.pop()[0])


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A store file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "lab.db"
    qdataset.connect(f"sqlite:///{path}").close()
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, leftovers  # a closed store is one file (no -wal to copy)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """URL of a fresh, empty store (already at the migration head), once per engine."""
    if request.param == "sqlite":
        path = tmp_path / "lab.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    schema, url = _pg_migrated_schema()
    try:
        yield url
    finally:
        _pg_release(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_engine(request, tmp_path):
    """An engine on an empty database per backend (an SQLite file, or a private
    PostgreSQL schema), for tests of migrations and raw schemas."""
    from qdataset.store.engine import create_engine

    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    schema, url = postgres_schema_url()
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_postgres_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """URL of a fresh SQLite store, for tests about the SQLite file itself."""
    return f"sqlite:///{tmp_path / 'lab.db'}"


@pytest.fixture
def store(store_url):
    """A connected fresh store, closed after the test."""
    s = qdataset.connect(store_url, flush_interval=0.05)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(sqlite_url):
    """A connected fresh SQLite store, closed after the test."""
    s = qdataset.connect(sqlite_url, flush_interval=0.05)
    yield s
    s.close()


@pytest.fixture
def xy_specs() -> list[ParamSpec]:
    return [
        ParamSpec("x", np.float64, role="setpoint", unit="V"),
        ParamSpec("y", np.float64, depends_on=["x"]),
    ]
