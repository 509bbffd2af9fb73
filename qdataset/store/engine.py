"""From a URL to a configured SQLAlchemy engine; where the default store lives."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from ..errors import StoreError

#: Seconds a connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0

DEFAULT_FILENAME = "qdataset.db"

#: Seconds a PostgreSQL connection attempt may take before it fails.
CONNECT_TIMEOUT_S = 10


def default_url() -> str:
    """The default store: ``$QDATASET_URL``, else one SQLite file in the user data dir."""
    url = os.environ.get("QDATASET_URL")
    if url:
        return url
    import platformdirs

    folder = Path(platformdirs.user_data_dir("qdataset", appauthor=False))
    return f"sqlite:///{folder / DEFAULT_FILENAME}"


def normalize_url(url: str | os.PathLike | None) -> str:
    """Accept a URL, or a plain path to an SQLite file."""
    if url is None:
        return default_url()
    text = os.fspath(url)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().absolute()}"
    return text


def redact_password(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host`` replaced by ***,
    for URLs too broken for SQLAlchemy to parse (and so to hide) themselves."""
    return re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", url)


def create_engine(url: str, create: bool = True,
                  busy_timeout: float = BUSY_TIMEOUT_S) -> sa.Engine:
    """An engine for ``url`` with qdataset's per-dialect connection settings.

    ``busy_timeout``: seconds an SQLite writer waits for another process's write
    lock before its write fails with a StoreError saying so.

    With ``create`` false an SQLite store must already exist: a missing file is
    a StoreError, and neither the file nor its folder is made.
    """
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: a non-numeric port
        raise StoreError(
            f"{redact_password(url)!r} is not a database URL; use e.g. sqlite:///lab.db"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create, busy_timeout)
    # A server host that drops packets must fail in seconds, not hang: unless the URL
    # says otherwise, PostgreSQL connections give up after CONNECT_TIMEOUT_S.
    connect_args = ({"connect_timeout": CONNECT_TIMEOUT_S}
                    if parsed.get_backend_name() == "postgresql"
                    and "connect_timeout" not in parsed.query else {})
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except sa.exc.NoSuchModuleError as exc:
        raise StoreError(
            f"{parsed.drivername!r} is not a database SQLAlchemy knows; use a URL such as "
            "sqlite:///lab.db or postgresql+psycopg://host/dbname"
        ) from exc
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "for PostgreSQL run: pip install 'qdataset[postgres]'"
        ) from exc


def check_sqlite_store(path: Path) -> None:
    """Raise StoreError unless ``path`` is an SQLite file holding a qdataset store.

    Looks without changing anything: the file is opened read-only and only its
    catalogue is read (an engine would switch a foreign file to WAL mode)."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise StoreError(
            f"no qdataset store at {str(path.absolute())!r}: the file {what}; check the path "
            "(reading never creates a store; connect(url) without create=False makes one)"
        )
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro",
                                                uri=True, timeout=BUSY_TIMEOUT_S)) as conn:
            names = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise StoreError(
            f"{str(path)!r} cannot be read as an SQLite database ({exc}); "
            "give the path of a qdataset store"
        ) from None
    if "alembic_version" not in names or "runs" not in names:
        what = "an empty file" if not names else "an SQLite database without qdataset's tables"
        raise StoreError(
            f"no qdataset store at {str(path.absolute())!r}: it is {what}; check the path "
            "(reading never creates a store; connect(url) without create=False makes one)"
        )


def sqlite_path(engine: sa.Engine) -> Path | None:
    """The database file of an SQLite engine (None for other engines)."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database)


def _sqlite_engine(url: sa.URL, create: bool = True,
                   busy_timeout: float = BUSY_TIMEOUT_S) -> sa.Engine:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise StoreError(
            "in-memory SQLite is not supported (each connection would see another "
            "database); use a file, e.g. connect('sqlite:///' + str(tmp_path / 'lab.db'))"
        )
    if create:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        check_sqlite_store(Path(database).expanduser())
    engine = sa.create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Writers take the lock up front so they wait (busy_timeout) instead of
        # failing with SQLITE_BUSY when upgrading a read lock.  Read-only work
        # runs on AUTOCOMMIT connections and takes no lock at all.
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
