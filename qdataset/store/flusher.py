"""The background timer that writes buffered results to the database."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import StoreClosedError
from .boundary import is_transient

if TYPE_CHECKING:
    from .rescue import Unwritten

log = logging.getLogger("qdataset")


class Flushable(Protocol):
    def flush(self) -> None:
        """Write what is buffered; on failure keep it, call ``Flusher.retry_later``
        and raise."""

    def unwritten(self, exc: Exception | None = None) -> Unwritten | None:
        """What it still holds, for a rescue file (None: nothing)."""


class Flusher:
    """Flushes every buffer handed to :meth:`request` by its deadline.

    One daemon thread per store, started on first use.  Each request carries
    a delay (at most ``interval``): rows wait at most that long in memory.  A
    buffer waiting to be flushed is referenced here, so rows are never lost to
    garbage collection of a DataSet that still has unwritten results.

    A failed flush (background or not) is handed to :meth:`retry_later`: a
    transient failure (database locked, full or unreachable) is retried with
    backoff; any other (a completed run, a lost lease) cannot be cured by
    retrying, so the buffer is kept aside, its writer's next call raises the
    error, and :meth:`close` gives it one last try and returns it with its rows
    for the store to rescue.
    """

    def __init__(self, interval: float, name: str = "qdataset-flusher") -> None:
        self.interval = interval
        self._name = name
        self._pending: dict[int, tuple[Flushable, float]] = {}  # id -> (buffer, deadline)
        self._stuck: dict[int, Flushable] = {}  # buffers whose failure retrying cannot cure
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._failures = FailureLog()

    @property
    def closed(self) -> bool:
        return self._closed

    def request(self, buffer: Flushable, delay: float | None = None,
                owner: str = "a run") -> None:
        """Schedule ``buffer.flush()`` within ``delay`` seconds (default: the interval).

        Lock order: callers may hold their own locks (a DataSet's buffer lock);
        the flusher's condition is always taken last and never held while a
        buffer flushes.
        """
        wait = self.interval if delay is None else min(delay, self.interval)
        deadline = time.monotonic() + wait
        with self._cond:
            if self._closed:
                raise StoreClosedError(
                    f"the store of {owner} is closed; open it again with connect(url)")
            current = self._pending.get(id(buffer))
            if current is None or deadline < current[1]:
                self._pending[id(buffer)] = (buffer, deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, buffer: Flushable) -> None:
        """Forget a pending request: ``buffer`` flushed itself."""
        with self._cond:
            self._pending.pop(id(buffer), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                # Sleep until the earliest deadline; new requests wake us to
                # re-check, but never make a buffer flush before its deadline.
                while True:
                    if self._closed:
                        return
                    if not self._pending:
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    earliest = min(deadline for _, deadline in self._pending.values())
                    if earliest <= now:
                        break
                    self._cond.wait(earliest - now)
                due = [buffer for buffer, deadline in self._pending.values() if deadline <= now]
                for buffer in due:
                    del self._pending[id(buffer)]
            for buffer in due:
                try:
                    buffer.flush()
                except Exception as exc:  # the rows stay buffered (see retry_later)
                    with self._cond:
                        reported = id(buffer) in self._pending or id(buffer) in self._stuck
                    if not reported:
                        self.retry_later(buffer, exc)
                else:
                    self._failures.succeeded(buffer)

    def retry_later(self, buffer: Flushable, exc: Exception) -> None:
        """``buffer.flush()`` failed with ``exc`` and kept its rows: retry with
        backoff if the failure is transient, else keep the buffer aside for close."""
        transient = is_transient(exc)
        delay = self._failures.failed(buffer, exc, self.interval, transient)
        with self._cond:
            if transient:
                if not self._closed:
                    self._pending[id(buffer)] = (buffer, time.monotonic() + delay)
                    self._cond.notify()
            else:
                self._pending.pop(id(buffer), None)
                self._stuck[id(buffer)] = buffer

    def close(self) -> list[tuple[Flushable, Exception]]:
        """Stop the thread and flush what is still pending (and, once more, what
        failed for good), in the caller's thread; returns the buffers that still
        could not be written, with their errors (their rows are still in them)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        with self._cond:
            batch = [buffer for buffer, _ in self._pending.values()]
            batch += [b for key, b in self._stuck.items() if key not in self._pending]
            self._pending, self._stuck = {}, {}
        failures = []
        for buffer in batch:
            try:
                buffer.flush()
            except Exception as exc:  # keep flushing the others
                failures.append((buffer, exc))
        return failures


#: Longest wait between retries of a failing background flush, in seconds.
MAX_RETRY_DELAY = 5.0
#: A failure that goes on is reported again at most this often, in seconds.
REPORT_EVERY = 60.0


class FailureLog:
    """Backoff and reporting for background flushes that keep failing.

    The first failure of a buffer is logged with its traceback; while the same
    kind of error goes on, it is reported again at most every REPORT_EVERY
    seconds (with the number of failed attempts), not on every retry.  Retries
    back off from the flush interval to MAX_RETRY_DELAY.  A flush that works
    again is logged once, so the log says when the rows were safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # id(buffer) -> [attempts, kind, last report], or "refused" (a permanent failure)
        self._state: dict[int, list | str] = {}

    def failed(self, buffer: Flushable, exc: Exception, interval: float,
               transient: bool = True) -> float:
        """Record a failed flush; returns the delay before the next attempt (for a
        transient failure)."""
        now = self._clock()
        if not transient:
            if self._state.pop(id(buffer), None) != "refused":
                log.error("qdataset: background flush stopped, retrying cannot help: %s",
                          exc)
            self._state[id(buffer)] = "refused"
            return 0.0
        kind = type(exc.__cause__ or exc).__name__
        state = self._state.get(id(buffer))
        if not isinstance(state, list):
            state = self._state[id(buffer)] = [0, None, float("-inf")]
        state[0] += 1
        delay = min(interval * 2 ** (state[0] - 1), MAX_RETRY_DELAY)
        if state[1] != kind:
            state[1], state[2] = kind, now
            log.warning("qdataset: background flush failed; the rows are kept in memory and "
                        "retried (next in %.1f s)", delay, exc_info=exc)
        elif now - state[2] >= REPORT_EVERY:
            state[2] = now
            log.warning("qdataset: background flush still failing after %d attempts (%s: %s); "
                        "the rows are kept in memory", state[0], kind, exc)
        return delay

    def succeeded(self, buffer: Flushable) -> None:
        state = self._state.pop(id(buffer), None)
        if isinstance(state, list):
            log.warning("qdataset: background flush succeeded after %d failed attempts; "
                        "the kept rows are stored", state[0])
