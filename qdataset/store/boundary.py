"""The one place where database errors become qdataset errors.

Every connection the storage package hands out (``RunStorage.reading`` /
``writing``, and through them ``Store.transaction`` / ``Store.reading``) runs
inside :func:`translating`, so no SQLAlchemy or driver exception leaves the
package: each becomes a specific :class:`~qdataset.errors.QDatasetError`
subclass whose message says what to do.  Errors raised by our own code inside
such a block (already qdataset errors) pass through unchanged.

Recognition goes by type and error code, never by message text: PostgreSQL's
SQLSTATE, SQLite's extended result code name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from ..errors import (
    CompletedError,
    FlushError,
    QDatasetError,
    ReadOnlyError,
    StorageLimitError,
    StoreError,
    StoreUnavailableError,
)

#: SQLSTATE raised by the PostgreSQL completion-lock trigger function (migration 0004).
LOCK_SQLSTATE = "QD001"

#: SQLite's extended result code for a ``RAISE(ABORT, ...)`` in a trigger; the
#: completion lock's triggers are the only triggers qdataset creates.
_SQLITE_TRIGGER_ABORT = "SQLITE_CONSTRAINT_TRIGGER"

#: PostgreSQL SQLSTATE classes / codes meaning "a value or layout is too large".
_PG_LIMIT_CODES = {"22001": "a text value is longer than its column allows",
                   "54000": "a row is larger than PostgreSQL can store",
                   "54011": "too many columns for one PostgreSQL table",
                   "54023": "too many arguments for one statement"}

#: SQLite result code names for the same family of problems.
_SQLITE_LIMIT_CODES = {"SQLITE_TOOBIG": "a value or row is larger than SQLite allows"}

#: PostgreSQL SQLSTATEs of a write by a role that may only read: insufficient_privilege
#: (no write grant, see roles.py) and read_only_sql_transaction
#: (default_transaction_read_only).
_PG_READ_ONLY_CODES = ("42501", "25006")

_SQLITE_FULL = "SQLITE_FULL"
#: SQLite result codes (prefixes) meaning "the file cannot be used now", not "this
#: statement is wrong": retrying may work (SQLITE_IOERR_WRITE for a file-size limit...).
_SQLITE_UNAVAILABLE = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL", "SQLITE_NOMEM",
                       "SQLITE_INTERRUPT")
#: PostgreSQL SQLSTATE classes about the statement or the data (syntax, constraints,
#: privileges...): an error of one of these is the same on every retry.
_PG_STATEMENT_CLASSES = ("22", "23", "42", "2B", "2D", "3F", "44")
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def driver_error(exc: BaseException) -> BaseException | None:
    """The driver exception behind ``exc`` (SQLAlchemy wraps them), or None."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.orig
    module = type(exc).__module__
    if module.startswith(("sqlite3", "psycopg", "_sqlite3")):
        return exc
    return None


def is_lock_violation(exc: BaseException) -> bool:
    """True when ``exc`` is the completion lock rejecting a write."""
    orig = driver_error(exc)
    if orig is None:
        return False
    return (getattr(orig, "sqlstate", None) == LOCK_SQLSTATE
            or getattr(orig, "sqlite_errorname", None) == _SQLITE_TRIGGER_ABORT)


def translate(exc: BaseException, url: Any, run_id: str | None = None) -> QDatasetError | None:
    """The qdataset error for a database error ``exc`` (None: not a database error)."""
    if isinstance(exc, QDatasetError):
        return None
    orig = driver_error(exc)
    if orig is None and not isinstance(exc, sa.exc.SQLAlchemyError):
        return None
    where = f"run {run_id!r} in {url!r}" if run_id else repr(url)
    detail = str(orig if orig is not None else exc).strip().splitlines()[0]
    if is_lock_violation(exc):
        return CompletedError(
            f"run {run_id!r} is completed, so its results cannot change; "
            "create a new DataSet for new data"
        )
    sqlstate = getattr(orig, "sqlstate", None) or ""
    errorname = getattr(orig, "sqlite_errorname", None) or ""
    if sqlstate in _PG_READ_ONLY_CODES:
        user = getattr(url, "username", None)
        return ReadOnlyError(
            f"{where}: the database role{f' {user!r}' if user else ''} is read-only here "
            f"({detail}), so nothing was written; connect as a role that may write (the "
            "store's owner) to change data, or only read with this one"
        )
    if errorname.startswith("SQLITE_READONLY"):
        return ReadOnlyError(
            f"{where}: this SQLite file may only be read by this process ({detail}), so "
            "nothing was written; to write, give the user write permission on the file and "
            "its directory (SQLite creates its -wal and -shm files there)"
        )
    limit = _PG_LIMIT_CODES.get(sqlstate) or _SQLITE_LIMIT_CODES.get(errorname)
    if limit is None and errorname == "SQLITE_ERROR" and "too many columns" in detail:
        limit = "too many columns for one SQLite table"  # SQLite has no code of its own
    if limit is not None:
        return StorageLimitError(
            f"{where}: {limit} ({detail}); use fewer or smaller parameters, or shorter names"
        )
    if errorname == _SQLITE_FULL or sqlstate == "53100":
        return StoreUnavailableError(
            f"{where}: the disk is full ({detail}); free space, then retry; "
            "nothing already stored was lost"
        )
    if errorname in _SQLITE_BUSY:
        return StoreUnavailableError(
            f"{where}: another process holds the write lock of this SQLite database and "
            f"kept it longer than the busy timeout ({detail}); nothing was written by this "
            "call. Retry once that process has finished writing, give it fewer, shorter "
            "writes, or wait longer with connect(url, busy_timeout=seconds)"
        )
    if sqlstate in ("55P03", "40P01"):
        return StoreUnavailableError(
            f"{where}: the database stayed locked by another writer ({detail}); retry, "
            "or give each process fewer, larger writes"
        )
    if errorname.startswith(_SQLITE_UNAVAILABLE):
        return StoreUnavailableError(
            f"{where}: the SQLite file cannot be used right now ({detail}); check the disk "
            "and the file's permissions; retrying may work"
        )
    if errorname or sqlstate[:2] in _PG_STATEMENT_CLASSES:
        return StoreError(f"database error on {where}: {detail}")  # the statement, not the server
    if (isinstance(exc, sa.exc.OperationalError) or _is_dbapi_operational(orig)
            or sqlstate.startswith(("08", "57P", "53"))
            or getattr(exc, "connection_invalidated", False)):
        return StoreUnavailableError(
            f"cannot use the database at {url!r} ({detail}); check that it is reachable "
            "and that the URL, user and permissions are right"
        )
    return StoreError(f"database error on {where}: {detail}")


def _is_dbapi_operational(orig: BaseException | None) -> bool:
    """A driver's PEP 249 ``OperationalError`` (the database, not the statement,
    failed: disk, connection, lock), raised without SQLAlchemy's wrapper."""
    return orig is not None and any(
        cls.__name__ == "OperationalError" for cls in type(orig).__mro__)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying what raised ``exc`` may work: the database was locked, full
    or unreachable (StoreUnavailableError), or something unforeseen that is not a
    qdataset error at all (retrying costs little and keeps the rows moving).  A
    refusal that stays — a completed run, a lost lease, a value too large, a
    statement the database rejects — is not transient."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreUnavailableError):
            return True
        if isinstance(seen, QDatasetError) and not isinstance(seen, FlushError):
            return False
        seen = seen.__cause__
    return not isinstance(exc, QDatasetError) or exc.__cause__ is not None


@contextmanager
def translating(url: Any, run_id: str | None = None) -> Iterator[None]:
    """Run a block, turning database errors into qdataset errors.

    ``url`` should be a SQLAlchemy URL (its repr hides the password).

    >>> with translating(engine.url, run_id):
    ...     conn.execute(...)
    """
    try:
        yield
    except Exception as exc:
        translated = translate(exc, url, run_id)
        if translated is None:
            raise
        raise translated from exc
