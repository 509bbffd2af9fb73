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
and raises :class:`~qdataset.errors.FlushError`; the next flush retries.

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
from collections.abc import Callable, Sequence
from typing import Any

from .errors import CompletedError, FlushError, StoreClosedError
from .recent import RecentRows
from .store import RunHandle
from .store.codec import ColumnCodec

#: The store's flusher thread writes buffered rows in the background, so the
#: measurement loop keeps running while the database stores.  A loop that keeps
#: the GIL busy can starve that thread; once the oldest buffered row waited this
#: many flush delays, the writer writes its buffer itself.
WRITER_FLUSH_AFTER = 2.0


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
        self._pending: list[list[Any]] = []
        self._flush_due = float("inf")  # when the oldest buffered row must be written
        self._announce = announce
        self._flush_delay = flush_delay

    # -- accepting rows --------------------------------------------------------------
    def append_one(self, row: list[Any], completed_error: Callable[[], Exception]) -> int:
        """:meth:`append` for one row: the row-by-row measurement loop's hot path."""
        self.handle.check_open()
        with self.lock:
            if self.completed:
                raise completed_error()
            index = row[0] = self.length
            self.length = index + 1
            self._pending.append(row)
            first = len(self._pending) == 1
        if first:
            self._schedule_or_take_back([row])
        elif time.monotonic() >= self._flush_due:
            self.flush()  # overdue (see append)
        return index

    def append(self, rows: list[list[Any]], completed_error: Callable[[], Exception]) -> int:
        """Number ``rows`` (``[placeholder, value, ...]``) from the current length,
        keep them and schedule their flush; returns the first index."""
        self.handle.check_open()  # before anything is counted: a closed store keeps nothing
        with self.lock:
            if self.completed:
                raise completed_error()
            first = self.length
            for offset, row in enumerate(rows):
                row[0] = first + offset
            self.length = first + len(rows)
            was_empty = not self._pending
            self._pending.extend(rows)
        if not rows:
            return first
        if was_empty:
            self._schedule_or_take_back(rows)
        elif time.monotonic() >= self._flush_due:
            # Overdue: a busy measurement loop starved the flusher thread of the
            # GIL (see WRITER_FLUSH_AFTER), so the writer flushes itself.
            self.flush()
        return first

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
        layout = self.layout
        try:
            self.handle.insert_rows(layout.names, rows, new_length, layout.kinds)
        except CompletedError:
            # Completed elsewhere: these rows can never be stored; the error says so.
            self.completed = True
            raise
        except Exception as exc:
            # Keep the rows, in order, ahead of anything added meanwhile.
            if relock:
                with self.lock:
                    self._pending[:0] = rows
            else:
                self._pending[:0] = rows
            raise FlushError(
                f"could not write {len(rows)} results of run {self.handle.id!r} ({exc}); "
                "they are kept in memory and written by the next flush (ds.flush() retries "
                "now)"
            ) from exc
        if self.recent is not None:
            self.recent.add(rows, layout.names, layout.codecs)

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
