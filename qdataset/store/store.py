"""Store: one database of runs (SQLite file or PostgreSQL server)."""

from __future__ import annotations

import atexit
import json
import numbers
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa

from .. import _wiring
from ..errors import (
    FlushError,
    InvalidArgumentError,
    RunNotFoundError,
    StoreClosedError,
    StoreError,
)
from ..paramspec import ParamSpec
from .boundary import translating
from .changes import ChangeFeed, open_change_feed
from .engine import BUSY_TIMEOUT_S, create_engine, normalize_url, sqlite_path
from .flusher import Flusher
from .handle import RunHandle
from .migrate import ensure_schema
from .rescue import Loaded, Unwritten, load_rescue, write_rescue
from .runs import RunRow, RunStorage
from .transfer import copy_run, import_run
from .writers import LeaseKeeper, new_token

if TYPE_CHECKING:
    from ..dataset import DataSet  # for annotations only: never imported at run time


class Attachment(Protocol):
    """A per-store service owned by a layer above (see :meth:`Store.attachment`)."""

    def close(self) -> None: ...


A = TypeVar("A", bound=Attachment)

#: Default upper bound, in seconds, on how long an accepted result stays in memory.
#: The flusher thread writes beside the measurement loop, so a short interval costs
#: a busy writer nothing (measured: 0.1 s was as fast as 0.5 s, or faster, because
#: less is left to write at completion) and lets live views elsewhere update 10x/s.
DEFAULT_FLUSH_INTERVAL = 0.1

#: Default seconds a writer's lease may go unrenewed before another host may take over.
DEFAULT_LEASE_TIMEOUT = 5.0

#: The metadata tag under which a failed measurement is recorded (``{"type", "message"}``,
#: set by ``DataSet.__exit__``); a run carrying it is listed with state "failed".
ERROR_TAG = "error"

#: The states :attr:`RunInfo.state` takes.
RUN_STATES = ("running", "interrupted", "completed", "failed")


@dataclass(frozen=True)
class RunInfo:
    """A run as listed by :meth:`Store.runs`: no result data is loaded."""

    id: str
    name: str
    created: datetime
    completed: bool
    completed_at: datetime | None
    length: int
    #: "running" (being written), "interrupted" (not completed and its writer is gone:
    #: ``store.resume_dataset(id)`` continues it), "completed", or "failed": the run
    #: carries metadata under "error" (see DataSet.__exit__), completed or not.
    state: str = "running"
    #: The run's number in this store (``store.read_dataset(number)``).
    number: int | None = None
    #: The groups given at creation (``DataSet(..., experiment=, sample=)``), or None.
    experiment: str | None = None
    sample: str | None = None

    @classmethod
    def from_row(cls, row: RunRow, failed: bool = False) -> RunInfo:
        if failed:
            state = "failed"
        elif row.completed_at is not None:
            state = "completed"
        elif row.writer is not None and row.writer.gone_reason() is not None:
            state = "interrupted"
        else:
            state = "running"
        return cls(row.run_id, row.name, _utc(row.created_at), row.completed_at is not None,
                   None if row.completed_at is None else _utc(row.completed_at), row.length,
                   state, row.number, row.experiment, row.sample)


class Store:
    """A database of runs.  Create it with :func:`connect`.

    >>> store = connect("sqlite:///lab.db")
    >>> ds = DataSet("sweep", [x, y], store=store)
    >>> [run.id for run in store.runs(completed=True)]
    >>> store.close()

    Everything that touches the database goes through this package; the
    layers above reach a run through the :class:`RunHandle` of
    :meth:`create_run` / :meth:`open_run`, and attach per-store services
    (the subscription notifier) with :meth:`attachment`.
    """

    def __init__(self, url: str | os.PathLike | None = None, *,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL, create: bool = True,
                 lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
                 busy_timeout: float = BUSY_TIMEOUT_S, upgrade: bool = True) -> None:
        for name, value in (("flush_interval", flush_interval),
                            ("lease_timeout", lease_timeout),
                            ("busy_timeout", busy_timeout)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise InvalidArgumentError(
                    f"{name} must be a positive number of seconds, got {value!r}"
                )
        self.url = normalize_url(url)
        # create=False: an SQLite file is looked at before any engine touches it.
        self.engine = create_engine(self.url, create=create, busy_timeout=float(busy_timeout))
        try:
            with translating(self.engine.url):
                ensure_schema(self.engine, create=create, upgrade=upgrade)
        except BaseException:
            self.engine.dispose()
            raise
        self.flush_interval = flush_interval
        self.lease_timeout = float(lease_timeout)
        self._storage = RunStorage(self.engine)
        self._flusher = Flusher(flush_interval)
        self._leases = LeaseKeeper(self.lease_timeout, renew=self._storage.renew,
                                   release=self._storage.release)
        self._attachments: dict[type, Attachment] = {}
        self._closed = False
        self._released = False  # set once close() has finished: then reads fail too
        self._lock = threading.Lock()
        _open_stores.add(self)

    # -- facts -------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The database file for SQLite stores, else None."""
        return sqlite_path(self.engine)

    @property
    def dialect(self) -> str:
        """The engine's name: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        """The URL with any password hidden: safe for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"<Store {self.display_url!r}>"

    # -- connections (for qdataset's own storage modules) ---------------------------
    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); database errors
        leave it as qdataset errors.

        >>> with store.transaction() as conn:
        ...     conn.execute(...)
        """
        self._check_open()
        return self._storage.writing()

    def reading(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads that holds no lock (autocommit)."""
        self._check_open()
        return self._storage.reading()

    # -- runs ---------------------------------------------------------------------
    def runs(self, name: str | None = None, completed: bool | None = None, *,
             experiment: str | None = None, sample: str | None = None,
             since: datetime | date | float | None = None,
             until: datetime | date | float | None = None,
             metadata: dict[str, Any] | None = None) -> list[RunInfo]:
        """Runs in this store, newest first, without loading any results.

        Every filter is optional and they combine: ``name``, ``completed``,
        ``experiment``, ``sample``, creation time ``since <= created < until``
        (datetimes, dates or unix seconds; naive ones are local time), and
        ``metadata={tag: value}``: runs whose metadata under ``tag`` equals
        ``value`` (compared as JSON text, as ``add_metadata`` stores it, so a
        dict matches only with the same key order).  Filters run in SQL on indexes.

        >>> store.runs(experiment="cooldown-3", since=datetime(2026, 12, 1))
        >>> store.runs(metadata={"operator": "alice"}, completed=True)
        """
        self._check_open()
        tags = None
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise InvalidArgumentError(
                    f"metadata= takes a dict of tag -> value, got {type(metadata).__name__}")
            try:
                tags = {tag: json.dumps(value, allow_nan=True) for tag, value in metadata.items()}
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(
                    f"metadata= values must be JSON-able to compare with stored metadata ({exc})"
                ) from exc
        rows = self._storage.list_runs(
            name, completed, experiment=experiment, sample=sample,
            since=_seconds(since, "since"), until=_seconds(until, "until"), metadata=tags)
        failed = self._storage.runs_tagged(ERROR_TAG) if rows else set()
        return [RunInfo.from_row(row, row.pk in failed) for row in rows]

    def runs_fingerprint(self) -> tuple[Any, ...]:
        """A value, read with one cheap query, that changes whenever :meth:`runs`
        would list something different, except a state that changes without a
        write: a run turns "interrupted" when its writer dies.  Lets a view of the
        run list skip re-reading ten thousand runs when nothing happened."""
        self._check_open()
        return self._storage.runs_fingerprint(ERROR_TAG)

    def run_info(self, run: str | int) -> RunInfo:
        """One run as :meth:`runs` lists it, its current state included; ``run`` is
        what :meth:`read_dataset` takes (id, number or unique id prefix)."""
        self._check_open()
        row = self._storage.find_run(_run_key(run))
        return RunInfo.from_row(row, bool(self._storage.runs_tagged(ERROR_TAG, [row.pk])))

    def read_dataset(self, run: str | int) -> DataSet:
        """A run as a live, read-only view bound to this store.

        ``run`` is the run's id, its number in this store (an int), or the start
        of its id if no other run's id starts so (AmbiguousRunError lists the
        runs that do; RunNotFoundError when none matches).

        The view follows the run as its writer adds results; its writing methods
        raise WriterActiveError (only the DataSet that created the run, or one
        from :meth:`resume_dataset`, writes it).

        >>> store.read_dataset(42)                      # by number
        >>> store.read_dataset("20261201-1305")         # by a unique id prefix
        """
        self._check_open()
        return self._dataset(self._handle(self._storage.find_run(_run_key(run))))

    def resume_dataset(self, run_id: str) -> DataSet:
        """A writing DataSet for the incomplete run ``run_id`` whose writer is gone
        (its process exited or was killed, or, from another host, stopped renewing
        its lease for ``lease_timeout`` seconds).  It continues at the next index.

        Raises WriterActiveError while the writer lives, CompletedError for a
        completed run.

        >>> ds = store.resume_dataset(run_id)   # after the measurement process crashed
        >>> ds.add_result(x=1.0, y=2.0)
        """
        return self._dataset(self.resume_run(run_id))

    def _dataset(self, handle: RunHandle) -> DataSet:
        opener = _wiring.open_dataset
        if opener is None:  # only if qdataset/__init__.py did not run: a broken install
            raise StoreError("qdataset is not fully imported; `import qdataset` first")
        return opener(self, handle)

    def load_rescue(self, path: str | os.PathLike) -> list[Loaded]:
        """Append the results saved in rescue file ``path`` (see rescue.py; the
        message of the FlushError that made it names it) to their runs in this store.

        Each run must be incomplete and its writer gone; its rescued results go
        after its last stored one.  Loading the same file again adds nothing.
        """
        self._check_open()
        return load_rescue(self._storage, path, self.lease_timeout)

    def write_dataset(self, dataset: DataSet) -> DataSet:
        """Copy ``dataset`` (values, metadata, completion, id) into this store."""
        self._check_open()
        dataset.flush()
        self.copy_run_from(dataset.store, dataset.id)
        return self.read_dataset(dataset.id)

    def copy_run_from(self, source: Store, run_id: str,
                      progress: Callable[[int], Any] | None = None) -> None:
        """Copy run ``run_id`` of ``source`` into this store, values as stored.

        ``progress(rows)`` is called after each chunk.  A copy that fails part-way
        is removed again, so a retry starts clean.
        """
        self._check_open()
        source._check_open()
        copy_run(source._storage, self._storage, run_id, progress)

    def import_run(self, run_id: str, name: str, created_at: float,
                   specs: Sequence[ParamSpec], columns: Sequence[Sequence[Any]], count: int,
                   metadata: dict[str, Any], completed_at: float | None, *,
                   experiment: str | None = None, sample: str | None = None,
                   number: int | None = None,
                   chunks: Iterable[tuple[Sequence[Sequence[Any]], int]] = ()) -> int | None:
        """Create a run from encoded columns (file imports), then the ``(columns,
        count)`` of ``chunks`` after them; all or nothing.  The run gets ``number``
        if no run of this store has it, else the next free one; returns its number.
        An incomplete run (``completed_at`` None) is left without a writer."""
        self._check_open()
        return import_run(self._storage, run_id, name, created_at, specs, columns, count,
                          metadata, completed_at, experiment=experiment, sample=sample,
                          number=number, chunks=chunks)

    def has_run(self, run_id: str) -> bool:
        """Whether a run with exactly this id is in the store."""
        self._check_open()
        try:
            self._storage.get_run(run_id)
        except RunNotFoundError:
            return False
        return True

    # -- the seams the layers above use ------------------------------------------------
    def create_run(self, run_id: str, name: str, created_at: float,
                   specs: Sequence[ParamSpec], *, experiment: str | None = None,
                   sample: str | None = None) -> RunHandle:
        """Create an empty run with parameters ``specs`` (and the store's next
        number); its handle, which holds the run's writer lease."""
        self._check_open()
        row = self._storage.create_run(run_id, name, created_at, specs, new_token(),
                                       self._lease_expiry(), experiment=experiment,
                                       sample=sample)
        return self._handle(row)

    def open_run(self, run_id: str) -> RunHandle:
        """A view's handle of the existing run ``run_id`` (RunNotFoundError if absent)."""
        self._check_open()
        return self._handle(self._storage.get_run(run_id))

    def resume_run(self, run_id: str) -> RunHandle:
        """Take over the writer lease of the incomplete run ``run_id`` whose writer is
        gone; its handle (see :meth:`resume_dataset`)."""
        self._check_open()
        return self._handle(self._storage.resume(run_id, new_token(), self._lease_expiry()))

    def _handle(self, row: RunRow) -> RunHandle:
        return RunHandle(self._storage, row, self._flusher, released=self._is_released,
                         leases=self._leases)

    def _lease_expiry(self) -> float:
        return time.time() + self.lease_timeout

    def change_feed(self) -> ChangeFeed:
        """A new feed of runs changed by other connections (close it when done)."""
        self._check_open()
        return open_change_feed(self._storage)

    def attachment(self, kind: Callable[[Store], A], create: bool = True) -> A | None:
        """This store's one instance of ``kind``, made as ``kind(store)`` on first use
        (None if ``create`` is false and there is none yet).  Attachments live as
        long as the store: ``store.close()`` closes them after the last flush."""
        with self._lock:
            found = self._attachments.get(kind)  # type: ignore[call-overload]
            if found is None and create:
                if self._closed:
                    raise self._closed_error()
                found = self._attachments[kind] = kind(self)  # type: ignore[index]
            return found  # type: ignore[return-value]

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        """Flush every buffered result and release connections and threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        failures: list = []
        rescued = None
        try:
            failures = self._flusher.close()  # the last flushes may notify subscribers
        finally:
            with self._lock:
                attachments, self._attachments = list(self._attachments.values()), {}
            for attachment in attachments:
                attachment.close()
            rescued = self._rescue(failures) if failures else None
            self._release_leases()
            # From here on reads fail too (until now the last flushes' subscribers,
            # e.g. a final callback, could still read what they were told about).
            self._released = True
            self.engine.dispose()
            _open_stores.discard(self)
        if rescued is not None:
            raise rescued

    def _rescue(self, failures: list) -> FlushError | None:
        """Save the rows ``close()`` could not write to a rescue file; the error that
        tells the writer where they are."""
        unwritten: list[Unwritten] = []
        for buffer, exc in failures:
            item = buffer.unwritten(exc)
            if item is not None and item.rows:
                unwritten.append(item)
        if not unwritten:  # the failed flushes had nothing left to write
            return None
        count = sum(len(item.rows) for item in unwritten)
        runs = ", ".join(repr(item.run_id) for item in unwritten)
        reasons = "; ".join(sorted({item.reason for item in unwritten}))
        try:
            path = write_rescue(self.display_url, self.path, unwritten)
        except Exception as exc:  # noqa: BLE001 - nowhere left to put them: say so
            return FlushError(
                f"store.close(): {count} results of run(s) {runs} could not be written "
                f"({reasons}) and could not be rescued to a file either ({exc}); "
                "they are lost")
        return FlushError(
            f"store.close(): {count} results of run(s) {runs} could not be written "
            f"({reasons}). They were saved to the rescue file {str(path)!r}; once the "
            f"database takes writes again, load them into their runs with "
            f"`qdataset rescue {path} --url {self.display_url}` or "
            f"connect(url).load_rescue(path)")

    def _release_leases(self) -> None:
        """Give up this store's writer leases, so others may resume its runs at once."""
        held = self._leases.close()
        if not held:
            return
        try:
            self._storage.release([lease.token for lease in held])
        except Exception as exc:  # noqa: BLE001 - they run out by themselves
            import logging

            logging.getLogger("qdataset").warning(
                "qdataset: could not release the writer leases of %d run(s) at close (%s); "
                "they may be resumed once this process has exited", len(held), exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def _is_released(self) -> bool:
        """True once close() has finished (what RunHandle's reads check)."""
        return self._released

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def _closed_error(self) -> StoreClosedError:
        return StoreClosedError(
            f"the store {self.display_url!r} is closed; open it again with connect(url)"
        )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def connect(url: str | os.PathLike | None = None, *,
            flush_interval: float = DEFAULT_FLUSH_INTERVAL, create: bool = True,
            lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
            busy_timeout: float = BUSY_TIMEOUT_S, upgrade: bool = True) -> Store:
    """Open (creating or upgrading if needed) the store at ``url``.

    Without a URL: ``$QDATASET_URL``, else ``qdataset.db`` in the user's data
    directory.  A plain file path means an SQLite file.  With ``create=False``
    the store must exist: a missing SQLite file, or a PostgreSQL database or
    schema without qdataset's tables, is a StoreError and nothing is created.
    A store at an older schema revision is upgraded, unless ``upgrade=False``:
    then it is a SchemaVersionError and the store is left as it is (what a
    viewer wants: processes still running the older qdataset refuse an
    upgraded store).
    ``lease_timeout``: seconds a writer's lease may go unrenewed before a writer
    on another host may take its run over.  ``busy_timeout``: seconds an SQLite
    writer waits for another process's write lock before failing with a StoreError
    (default 30).

    >>> store = connect("sqlite:///lab.db")
    >>> store = connect("sqlite:///lab.db", create=False)   # read: never creates
    >>> store = connect("postgresql+psycopg://lab-server/qdataset")
    """
    return Store(url, flush_interval=flush_interval, create=create,
                 lease_timeout=lease_timeout, busy_timeout=busy_timeout, upgrade=upgrade)


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
    """At interpreter exit, write out every buffered result; results that cannot be
    written go to a rescue file, and stderr says where."""
    for store in list(_open_stores):
        try:
            store.close()
        except Exception as exc:  # noqa: BLE001 - report and continue with the others
            print(f"qdataset: at exit: {exc}", file=sys.stderr, flush=True)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _seconds(moment: datetime | date | float | None, name: str) -> float | None:
    """Unix seconds of a ``since``/``until`` bound (naive datetimes and dates: local)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.timestamp()
    if isinstance(moment, date):
        return datetime(moment.year, moment.month, moment.day).timestamp()
    if isinstance(moment, numbers.Real) and not isinstance(moment, bool):
        return float(moment)
    raise InvalidArgumentError(
        f"{name}= takes a datetime, a date or unix seconds, got {moment!r}")


def _run_key(run: Any) -> str | int:
    """A run id/prefix (str) or a run number (int, numpy integers too)."""
    if isinstance(run, str):
        return run
    if isinstance(run, numbers.Integral) and not isinstance(run, bool):
        return int(run)
    raise InvalidArgumentError(
        f"a run is given by its id or a unique id prefix (str), or its number (int), "
        f"not {run!r}")
