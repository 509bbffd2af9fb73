"""Store: one database of runs (SQLite file or PostgreSQL server)."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .engine import create_engine, normalize_url, sqlite_path
from .flusher import Flusher
from .migrate import ensure_schema
from .runs import RunRow, RunStorage

if TYPE_CHECKING:
    from ..dataset import DataSet
    from ..subscription import Notifier

#: Default upper bound, in seconds, on how long an accepted result stays in memory.
#: The flusher thread writes beside the measurement loop, so a short interval costs
#: a busy writer nothing (measured: 0.1 s was as fast as 0.5 s, or faster, because
#: less is left to write at completion) and lets live views elsewhere update 10x/s.
DEFAULT_FLUSH_INTERVAL = 0.1


@dataclass(frozen=True)
class RunInfo:
    """A run as listed by :meth:`Store.runs`: no result data is loaded."""

    id: str
    name: str
    created: datetime
    completed: bool
    completed_at: datetime | None
    length: int

    @classmethod
    def from_row(cls, row: RunRow) -> RunInfo:
        return cls(row.run_id, row.name, _utc(row.created_at), row.completed_at is not None,
                   None if row.completed_at is None else _utc(row.completed_at), row.length)


class Store:
    """A database of runs.  Create it with :func:`connect`.

    >>> store = connect("sqlite:///lab.db")
    >>> ds = DataSet("sweep", [x, y], store=store)
    >>> [run.id for run in store.runs(completed=True)]
    >>> store.close()
    """

    def __init__(self, url: str | os.PathLike | None = None, *,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be a positive number of seconds")
        self.url = normalize_url(url)
        self.engine = create_engine(self.url)
        ensure_schema(self.engine)
        self.flush_interval = flush_interval
        self._storage = RunStorage(self.engine)
        self._flusher = Flusher(flush_interval)
        self._notifier: Notifier | None = None
        self._closed = False
        self._lock = threading.Lock()
        _open_stores.add(self)

    def _get_notifier(self) -> Notifier:
        """The store's notifier thread, started on the first subscription."""
        with self._lock:
            if self._notifier is None:
                from ..subscription import Notifier

                self._notifier = Notifier(self)
            return self._notifier

    # -- facts -------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The database file for SQLite stores, else None."""
        return sqlite_path(self.engine)

    @property
    def dialect(self) -> str:
        """The engine's name: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"<Store {self.engine.url!r}>"

    # -- connections (for qdataset's own storage modules) ---------------------------
    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite).

        >>> with store.transaction() as conn:
        ...     conn.execute(...)
        """
        return self._storage.writing()

    def reading(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads that holds no lock (autocommit)."""
        return self._storage.reading()

    # -- runs ---------------------------------------------------------------------
    def runs(self, name: str | None = None, completed: bool | None = None) -> list[RunInfo]:
        """Runs in this store, newest first, optionally by name and completion."""
        return [RunInfo.from_row(row) for row in self._storage.list_runs(name, completed)]

    def read_dataset(self, run_id: str) -> DataSet:
        """The run ``run_id`` as a live DataSet bound to this store."""
        from ..dataset import DataSet  # the dataset layer sits above the store

        return DataSet._open(self, self._storage.get_run(run_id))

    def write_dataset(self, dataset: DataSet) -> DataSet:
        """Copy ``dataset`` (values, metadata, completion, id) into this store."""
        from ..io import copy_dataset

        return copy_dataset(dataset, self)

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """Flush every buffered result and release connections and threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._flusher.close()  # the last flushes may still notify subscribers
        finally:
            if self._notifier is not None:
                self._notifier.close()
            self.engine.dispose()
            _open_stores.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def connect(url: str | os.PathLike | None = None, *,
            flush_interval: float = DEFAULT_FLUSH_INTERVAL) -> Store:
    """Open (creating or upgrading if needed) the store at ``url``.

    Without a URL: ``$QDATASET_URL``, else ``qdataset.db`` in the user's data
    directory.  A plain file path means an SQLite file.

    >>> store = connect("sqlite:///lab.db")
    >>> store = connect("postgresql+psycopg://lab-server/qdataset")
    """
    return Store(url, flush_interval=flush_interval)


_default_store: Store | None = None
_default_lock = threading.Lock()


def default_store() -> Store:
    """The process-wide store used when a DataSet is created without ``store=``."""
    global _default_store
    with _default_lock:
        if _default_store is None or _default_store.closed:
            _default_store = connect()
        return _default_store


_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """At interpreter exit, write out every buffered result."""
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - report and continue with the others
            import logging

            logging.getLogger("qdataset").exception("qdataset: flush at exit failed")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
