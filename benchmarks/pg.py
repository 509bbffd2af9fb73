"""PostgreSQL for the benchmarks: is a server there, and one fresh schema per measurement.

Every measurement on PostgreSQL gets its own schema (``CREATE SCHEMA``) and a
URL whose ``options=-csearch_path=<schema>`` makes qdataset create its tables
there, so measurements never see each other's runs; the schema is dropped
afterwards. Only the parent processes (``runner.py``, ``live.py``) use this
module; the workers just get the URL.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import quote

DEFAULT_PG_URL = os.environ.get("QDATASET_BENCH_PG_URL",
                                "postgresql+psycopg://127.0.0.1:5432/test")
CONNECT_TIMEOUT_S = 3


def _engine(url: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(url, poolclass=NullPool,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def is_pg(target: str) -> bool:
    """Whether a benchmark target is a PostgreSQL URL (else it is a SQLite file path)."""
    return target.startswith("postgresql")


def check_server(url: str = DEFAULT_PG_URL) -> str | None:
    """None when a server answers at ``url``; otherwise why not (one line)."""
    try:
        engine = _engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
    return None


def schema_url(base: str, schema: str) -> str:
    """``base`` with ``search_path`` set to ``schema`` for every connection."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema, safe='-')}"


def create_schema(base: str = DEFAULT_PG_URL, label: str = "m") -> tuple[str, str]:
    """A new empty schema: (schema name, URL that uses it)."""
    schema = f"qdbench_{label.lower()}_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return schema, schema_url(base, schema)


def schema_of(url: str) -> str:
    """The schema a :func:`schema_url` URL points at."""
    marker = "search_path%3D"
    return url[url.index(marker) + len(marker):].split("&")[0]


def base_of(url: str) -> str:
    """The URL without the ``options`` :func:`schema_url` added."""
    return url.split("?options=")[0].split("&options=")[0]


def drop_schema(url: str) -> bool:
    """Drop the schema of a :func:`schema_url` URL and everything in it; False if it stays.

    ``DROP SCHEMA ... CASCADE`` takes a lock per object in one transaction, so a
    schema with thousands of tables can exceed the server's lock table ("out
    of shared memory"); then its tables go first, a few hundred per transaction.
    """
    schema = schema_of(url)
    try:
        engine = _engine(base_of(url))
    except Exception:  # noqa: BLE001 - best effort clean-up
        return False
    try:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return True
        except Exception:  # noqa: BLE001, S110 - retried below in small transactions
            pass
        while True:
            with engine.begin() as conn:
                tables = [r[0] for r in conn.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %(s)s LIMIT 200",
                    {"s": schema})]
                if not tables:
                    break
                names = ", ".join('"{}"."{}"'.format(schema, t.replace('"', '""'))
                                  for t in tables)
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {names} CASCADE")
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return True
    except Exception:  # noqa: BLE001 - best effort clean-up
        return False
    finally:
        engine.dispose()


def schema_size_mb(url: str) -> float | None:
    """Tables + indexes + TOAST of the schema in MB (the PostgreSQL "file size")."""
    try:
        engine = _engine(base_of(url))
        with engine.connect() as conn:
            total = conn.exec_driver_sql(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'm')",
                {"s": schema_of(url)},
            ).scalar_one()
        engine.dispose()
    except Exception:  # noqa: BLE001 - a size is nice to have
        return None
    return int(total) / 1e6


def named_schema(base: str, schema: str) -> tuple[str, bool]:
    """The URL of schema ``schema`` (created if missing) and whether it was already there."""
    engine = _engine(base)
    with engine.begin() as conn:
        existed = conn.exec_driver_sql(
            "SELECT 1 FROM pg_namespace WHERE nspname = %(s)s", {"s": schema},
        ).first() is not None
        if not existed:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return schema_url(base, schema), existed
