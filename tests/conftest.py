"""Shared fixtures: a fresh store per test, on SQLite and on PostgreSQL.

The PostgreSQL server is found at ``$QDATASET_TEST_POSTGRES_URL`` (default:
the local server, database ``test``).  Each test gets its own schema, dropped
afterwards.  Where no server answers, the PostgreSQL variants skip and say why.
"""

from __future__ import annotations

import os
import uuid
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
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'qdataset[postgres]')"
    import sqlalchemy as sa

    url = sa.engine.make_url(POSTGRES_URL)
    try:
        psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                        user=url.username, password=url.password, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return (f"no PostgreSQL server answers at {url.render_as_string()} ({exc}); "
                "start one or set QDATASET_TEST_POSTGRES_URL")
    return None


def postgres_schema_url() -> tuple[str, str]:
    """A fresh schema on the test server and a URL whose search_path points at it."""
    import psycopg
    import sqlalchemy as sa

    schema = f"qdt_{uuid.uuid4().hex[:12]}"
    url = sa.engine.make_url(POSTGRES_URL)
    with psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                         user=url.username, password=url.password, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def drop_postgres_schema(schema: str) -> None:
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(POSTGRES_URL)
    with psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                         user=url.username, password=url.password, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """URL of a fresh, empty store, once per engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lab.db'}"
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    schema, url = postgres_schema_url()
    try:
        yield url
    finally:
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
