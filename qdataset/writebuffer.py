"""The write buffer of one run: accepted results on their way to the database.

:class:`WriteBuffer` owns the rows a DataSet accepted but has not written
yet, the run's length as the writer knows it, and when to write:

* the first row after a flush asks the store's flusher thread to write
  within the flush delay (the flush interval, or sooner when subscribers in
  this process want news more often);
* a loop that starves that thread of the GIL writes its own buffer once the
  oldest row waited ``WRITER_FLUSH_AFTER`` delays (see :meth:`append`);
* reads, schema changes and completion flush first.

A failed write keeps its rows, in order, ahead of anything added meanwhile,
raises :class:`~qdataset.errors.FlushError` and hands the buffer to the store's
flusher (``RunHandle.retry_later``): a transient failure (database locked,
full or unreachable) is retried with backoff; a permanent one (the run was
completed or taken over elsewhere) is kept as :attr:`WriteBuffer.failure`,
which every later writing call raises, while the rows stay here
(:meth:`WriteBuffer.unwritten`) for ``store.close()`` to save to a rescue file.

On PostgreSQL row appends commit asynchronously (README, "Durability"): the
rows of the last ``RETAIN_FLUSHED_S`` seconds stay in memory after they were
written, so if the server crashes and loses them, the next flush (which finds
the stored length short of its own) writes them again.

Lock order (always taken in this order, never the other way round):

1. ``io_lock`` (re-entrant): orders this run's database writes; held across I/O.
2. ``lock``: guards the pending rows, the length and the completed flag; held
   only for memory operations, never across database I/O, so ``add_result``
   never waits for the database.
3. the store flusher's condition (``RunHandle.schedule_flush`` / ``cancel_flush``).
4. the notifier's condition (``announce``), only after both locks above are released.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .errors import CompletedError, FlushError, QDatasetError, StoreClosedError
from .recent import RecentRows
from .store import RunHandle
from .store.boundary import is_transient
from .store.codec import ColumnCodec
from .store.rescue import Unwritten
from .store.writers import StoredLengthConflict

#: The store's flusher thread writes buffered rows in the background, so the
#: measurement loop keeps running while the database stores.  A loop that keeps
#: the GIL busy can starve that thread; once the oldest buffered row waited this
#: many flush delays, the writer writes its buffer itself.
WRITER_FLUSH_AFTER = 2.0

#: Most rows one flush transaction writes (more go in further transactions).
FLUSH_BATCH_ROWS = 50_000

#: Seconds written rows stay in memory where commits are asynchronous (PostgreSQL
#: flushes its WAL at least every 3 x wal_writer_delay = 0.6 s by default).
RETAIN_FLUSHED_S = 2.0


class RowLayout:
    """Column order of buffered rows: ``[index, value of names[0], ...]``."""

    def __init__(self, names: Sequence[str], codecs: Sequence[ColumnCodec]) -> None:
        self.names = list(names)
        self.codecs = list(codecs)
        self.kinds = [c.number_kind for c in codecs]


class WriteBuffer:
    """Results of one run accepted in memory, written in order by flushes.

    ``announce(length, completed)`` is called (without locks held) after rows
    or completion reached the database; ``flush_delay()`` says how soon
    subscribers want them (None: the store's flush interval).
    """

    def __init__(self, handle: RunHandle, length: int, completed: bool, layout: RowLayout,
                 announce: Callable[[int, bool], None],
                 flush_delay: Callable[[], float | None]) -> None:
        self.handle = handle
        self.length = length
        self.completed = completed
        self.layout = layout
        self.recent: RecentRows | None = None  # decoded recent rows, once a cursor exists
        self.lock = threading.Lock()
        self.io_lock = threading.RLock()
        # Accepted rows not yet written, as tuples: CPython's collector stops tracking
        # a tuple of numbers, strings and bytes at its first collection, while a list
        # stays tracked, reaches the oldest generation and sets off full passes over
        # the whole process (lists: 4 passes, ~200 ms, in a 400,000-row loop of 0.93 s).
        self._pending: list[tuple[Any, ...]] = []
        self._flush_due = float("inf")  # when the oldest buffered row must be written
        self._announce = announce
        self._flush_delay = flush_delay
        #: The permanent failure every later writing call raises (None: none).
        self.failure: QDatasetError | None = None
        # Recently written row batches (monotonic time, rows), kept while their
        # commit may still be lost by a crashing server (async commit only).
        self._retained: deque[tuple[float, list[tuple[Any, ...]]]] | None = (
            deque() if handle.async_commit else None)

    # -- accepting rows --------------------------------------------------------------
    def append_one(self, row: list[Any], completed_error: Callable[[], Exception]) -> int:
        """:meth:`append` for one row: the row-by-row measurement loop's hot path."""
        self.handle.check_open()
        with self.lock:
            if self.failure is not None:
                raise self.failure.with_traceback(None)
            if self.completed:
                raise completed_error()
            index = row[0] = self.length
            self.length = index + 1
            kept = tuple(row)  # untracked by the collector: see _pending
            self._pending.append(kept)
            first = len(self._pending) == 1
        if first:
            self._schedule_or_take_back([kept])
        elif time.monotonic() >= self._flush_due:
            self._flush_overdue()
        return index

    def append(self, rows: list[list[Any]], completed_error: Callable[[], Exception]) -> int:
        """Number ``rows`` (``[placeholder, value, ...]``) from the current length,
        keep them and schedule their flush; returns the first index."""
        self.handle.check_open()  # before anything is counted: a closed store keeps nothing
        with self.lock:
            if self.failure is not None:
                raise self.failure.with_traceback(None)
            if self.completed:
                raise completed_error()
            first = self.length
            for offset, row in enumerate(rows):
                row[0] = first + offset
            kept = [tuple(row) for row in rows]  # see _pending
            self.length = first + len(kept)
            was_empty = not self._pending
            self._pending.extend(kept)
        if not kept:
            return first
        if was_empty:
            self._schedule_or_take_back(kept)
        elif time.monotonic() >= self._flush_due:
            self._flush_overdue()
        return first

    def _flush_overdue(self) -> None:
        """Overdue: a busy measurement loop starved the flusher thread of the GIL
        (see WRITER_FLUSH_AFTER), so the writer flushes itself.  A transient failure
        (database briefly unreachable) does not stop the loop: the rows are kept,
        the flusher retries them with backoff and logs a WARNING; only a permanent
        failure is raised."""
        try:
            self.flush()
        except FlushError:
            if self.failure is not None:
                raise
            self._flush_due = float("inf")  # until the flusher got the rows through

    def _schedule_or_take_back(self, rows: list[list[Any]]) -> None:
        try:
            self._schedule()
        except StoreClosedError:  # closed meanwhile: take the rows back, keep nothing
            with self.lock:
                if self._pending and self._pending[-1] is rows[-1]:
                    del self._pending[-len(rows):]
                    self.length -= len(rows)
            raise

    def _schedule(self) -> None:
        lost = self.handle.lease_lost  # checked once per flush, not per row
        if lost is not None and self.failure is None:
            self.failure = lost  # type: ignore[assignment]
        interval = self.handle.flush_interval
        delay = self._flush_delay()
        if delay is None or delay > interval:
            delay = interval
        self._flush_due = time.monotonic() + WRITER_FLUSH_AFTER * delay
        self.handle.schedule_flush(self, delay)

    # -- writing -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered rows now (called by the flusher thread and by readers)."""
        with self.io_lock:
            with self.lock:
                rows, self._pending = self._pending, []
                new_length = self.length
                # In the lock: a row appended now finds the buffer empty and
                # schedules a new flush, which this discard must not cancel.
                self.handle.cancel_flush(self)
            if rows:
                self._write(rows, new_length, relock=True)
        if rows:
            self.announce()

    def flush_locked(self) -> None:
        """Flush while the caller holds ``io_lock`` and ``lock`` (schema changes,
        bulk inserts, completion)."""
        rows, self._pending = self._pending, []
        self.handle.cancel_flush(self)
        if rows:
            self._write(rows, self.length, relock=False)

    def _write(self, rows: list[list[Any]], new_length: int, relock: bool) -> None:
        """Write ``rows`` (indices up to ``new_length - 1``) in transactions of at most
        FLUSH_BATCH_ROWS rows: a long backlog (after an outage) neither holds the write
        lock for long nor needs room for all of it at once to make progress."""
        written = 0
        try:
            for lo in range(0, len(rows), FLUSH_BATCH_ROWS):
                batch = rows[lo:lo + FLUSH_BATCH_ROWS]
                self._insert(batch, batch[-1][0] + 1)
                written = lo + len(batch)
        except Exception as exc:
            kept = rows[written:]
            # Keep the rows, in order, ahead of anything added meanwhile.
            if relock:
                with self.lock:
                    self._pending[:0] = kept
            else:
                self._pending[:0] = kept
            error = self._failed(exc, len(kept))
            self.handle.retry_later(self, error)
            if error is exc:
                raise
            raise error from exc
        finally:
            if written and self.recent is not None:
                self.recent.add(rows[:written], self.layout.names, self.layout.codecs)

    def _insert(self, rows: list[list[Any]], new_length: int) -> None:
        """Write ``rows``; where a crashed server lost retained rows, write those first."""
        layout = self.layout
        try:
            self.handle.insert_rows(layout.names, rows, new_length, layout.kinds)
        except StoredLengthConflict as conflict:
            lost = self._retained_from(conflict.stored, rows[0][0])
            if lost is None:
                raise
            self.handle.insert_rows(layout.names, lost + rows, new_length, layout.kinds)
            rows = lost + rows
        if self._retained is not None:
            now = time.monotonic()
            retained = self._retained
            retained.append((now, rows))
            while retained and retained[0][0] < now - RETAIN_FLUSHED_S:
                retained.popleft()

    def _retained_from(self, stored: int, first: int) -> list[list[Any]] | None:
        """The retained rows ``stored <= index < first`` if all are still here."""
        if self._retained is None or stored >= first:
            return None
        kept = [row for _, batch in self._retained for row in batch
                if stored <= row[0] < first]
        return kept if len(kept) == first - stored else None

    def _failed(self, exc: Exception, count: int) -> QDatasetError:
        """The error a failed write of ``count`` rows raises; remembers a permanent one."""
        if is_transient(exc):
            error = FlushError(
                f"could not write {count} results of run {self.handle.id!r} ({exc}); they "
                "are kept in memory and retried in the background (ds.flush() retries now)"
            )
            error.__cause__ = exc  # retry_later classifies by the cause
            return error
        failure = exc if isinstance(exc, QDatasetError) else FlushError(
            f"could not write {count} results of run {self.handle.id!r} ({exc}); retrying "
            "cannot help: they are kept in memory (ds.unwritten_results()) and "
            "store.close() saves them to a rescue file")
        if failure is not exc:
            failure.__cause__ = exc
        # Plain assignments (atomic): the caller may or may not hold self.lock.
        self.failure = failure
        if isinstance(exc, CompletedError):
            self.completed = True
        return failure

    def unwritten(self, exc: Exception | None = None) -> Unwritten | None:
        """The rows accepted but not written, for a rescue file (None: there are none)."""
        with self.lock:
            rows = list(self._pending)
        if not rows:
            return None
        handle = self.handle
        reason = str(exc or self.failure or "not written")
        return Unwritten(handle.id, handle.name, handle.created_at,
                         [codec.spec for codec in self.layout.codecs], rows,
                         " ".join(reason.split())[:500])

    def announce(self) -> None:
        """Tell subscribers the stored state (call without holding the locks)."""
        self._announce(self.length, self.completed)

    # -- state changes (callers hold io_lock and lock) ----------------------------------
    def set_layout(self, layout: RowLayout) -> None:
        """New columns: only with an empty buffer (flush_locked first)."""
        assert not self._pending, "flush before changing the row layout"
        self.layout = layout

    def forget_recent(self) -> None:
        """Drop cached rows after the data changed other than by appending."""
        if self.recent is not None:
            self.recent.clear()

    def keep_recent(self) -> None:
        """Start keeping decoded copies of flushed rows for cursors."""
        with self.io_lock:
            if self.recent is None:
                self.recent = RecentRows()

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written."""
        return len(self._pending)
