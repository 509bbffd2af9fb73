"""Subscriptions: callbacks told about new results, from a background notifier thread.

One :class:`Notifier` per store owns one thread that decides when each
subscription is due.  It learns about new rows in two ways:

* the writing DataSet's flush tells it directly (same process and store:
  no database round trip, no polling), and
* for runs written elsewhere (another process, store or machine), the
  store's change feed (``Store.change_feed``: ``PRAGMA data_version`` on
  SQLite, LISTEN/NOTIFY on PostgreSQL) is asked at the subscriptions'
  ``min_wait`` which runs changed; nothing is written to the database for it.

Callbacks run on each subscription's own delivery thread, so a slow or
failing callback only delays itself: never ``add_result``, never another
subscriber.  Between calls only the latest length is remembered, so memory
stays bounded however slow a subscriber is.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, InvalidCallbackError, StoreClosedError
from .store import ChangeFeed, Store

if TYPE_CHECKING:
    from .dataset import DataSet

log = logging.getLogger("qdataset")

Callback = Callable[["DataSet", int, Any], Any]

_ids = itertools.count(1)

#: Marks the delivery threads, so reads made by a callback know where they run.
_delivery = threading.local()


#: Shortest flush delay subscribers can ask of a writer, in seconds.  Every flush
#: is a transaction; measured with five reading subscribers, flushing every 50 ms
#: cost a busy writer 10-25% of its speed, every 100 ms about 5%.
MIN_FLUSH_DELAY = 0.1

#: A callback that keeps raising is logged on its first error, then at most once
#: per this many seconds (each report counts the errors not logged since the last).
ERROR_LOG_INTERVAL = 60.0

#: The clock of that throttle (a module attribute, so tests can move time on).
error_clock = time.monotonic


def in_callback() -> bool:
    """True on a subscription's delivery thread (inside a callback)."""
    return getattr(_delivery, "active", False)


class Subscription:
    """A registered callback; returned (opaquely) by :meth:`DataSet.subscribe`."""

    def __init__(self, dataset: DataSet, callback: Callback, min_wait_ms: float,
                 min_count: int, state: Any, start_length: int, run_key: int,
                 remote: bool) -> None:
        _check_callback(callback)
        if not min_wait_ms >= 0 or isinstance(min_count, bool) or not min_count >= 1:
            raise InvalidArgumentError(
                f"min_wait must be >= 0 ms and min_count >= 1, got min_wait={min_wait_ms!r}, "
                f"min_count={min_count!r}"
            )
        self.id = f"sub-{next(_ids)}"
        self.dataset = dataset
        self.callback = callback
        self.min_wait = min_wait_ms / 1000.0
        self.min_count = int(min_count)
        self.state = state
        self.run_key = run_key
        self.remote = remote  # the run is written elsewhere: the notifier polls for it
        # What the notifier knows, and what the callback was last told.
        self.known_length = start_length
        self.known_completed = False
        self.last_length = start_length
        self.last_call = float("-inf")
        self.final_sent = False
        self.active = True
        self.busy = False
        self._finished = threading.Event()  # set once the completion call has returned
        self._wake = threading.Condition()
        self._job: tuple[int, bool] | None = None
        self._thread = threading.Thread(target=self._deliver_loop,
                                        name=f"qdataset-{self.id}", daemon=True)
        self._owner: Notifier | None = None
        # Callback errors: when the last one was logged, and how many were not since.
        self._error_logged_at: float | None = None
        self._errors_unlogged = 0

    @property
    def finished(self) -> bool:
        """True once the call announcing completion has returned."""
        return self._finished.is_set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the completion call has returned (or ``timeout`` s); its result."""
        return self._finished.wait(timeout)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} on {self.dataset.id!r}>"

    # -- decided by the notifier ---------------------------------------------------------
    def due_at(self) -> float | None:
        """When this subscription should next be called (None: nothing to say)."""
        if not self.active or self.busy or self.final_sent:
            return None
        if self.known_completed:
            return 0.0  # the final call ignores min_wait and min_count
        if self.known_length - self.last_length >= self.min_count:
            return self.last_call + self.min_wait
        return None

    def dispatch(self) -> None:
        """Hand the current state to the delivery thread (notifier thread, under lock)."""
        final = self.known_completed
        self.busy = True
        if final:
            self.final_sent = True
        else:
            self.last_length = self.known_length
        self.last_call = time.monotonic()
        with self._wake:
            self._job = (self.known_length, final)
            self._wake.notify()

    # -- the delivery thread ------------------------------------------------------------------
    def _deliver_loop(self) -> None:
        _delivery.active = True
        while True:
            with self._wake:
                while self._job is None and self.active:
                    self._wake.wait()
                if self._job is None:
                    self._report_unlogged()  # unsubscribed or closed
                    return
                length, final = self._job
                self._job = None
            try:
                self.callback(self.dataset, length, self.state)
            except Exception:
                self._callback_failed(length, final)
            notifier = self._owner
            if notifier is not None:
                notifier.delivered(self)
            if final:
                self._report_unlogged()
                self._finished.set()
                return

    def _callback_failed(self, length: int, final: bool) -> None:
        """Log a callback's error: the first one, then at most once per
        ERROR_LOG_INTERVAL, counting the ones in between (called in the except block)."""
        now = error_clock()
        last = self._error_logged_at
        if last is not None and now - last < ERROR_LOG_INTERVAL and not final:
            self._errors_unlogged += 1
            return
        unlogged, self._errors_unlogged = self._errors_unlogged, 0
        self._error_logged_at = now
        if last is None:
            log.exception("qdataset: subscription %s callback raised (length %d); further "
                          "errors of this callback are logged at most once every %.0f s",
                          self.id, length, ERROR_LOG_INTERVAL)
        else:
            log.exception("qdataset: subscription %s callback raised again (length %d); "
                          "%d more errors since the last report were not logged",
                          self.id, length, unlogged)

    def _report_unlogged(self) -> None:
        """When calls end: count the errors the throttle held back, if any."""
        if self._errors_unlogged:
            log.error("qdataset: subscription %s ended; its callback raised %d more errors "
                      "that were not logged one by one", self.id, self._errors_unlogged)
            self._errors_unlogged = 0

    # -- lifetime (driven by the notifier) -------------------------------------------------
    def start(self, notifier: Notifier) -> None:
        self._owner = notifier
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self.active = False
            self._wake.notify()

    def join(self, timeout: float) -> None:
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join(timeout)


class Notifier:
    """The store's notifier thread: throttles, coalesces and dispatches notifications."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._subs: dict[int, list[Subscription]] = {}  # run key -> subscriptions
        self._thread: threading.Thread | None = None
        self._closed = False
        self._feed: ChangeFeed | None = None
        self._next_poll = 0.0

    # -- registration ------------------------------------------------------------------------
    def add(self, sub: Subscription) -> None:
        with self._cond:
            if self._closed:
                raise StoreClosedError("the store is closed; open it again with connect(url)")
            self._subs.setdefault(sub.run_key, []).append(sub)
            sub.start(self)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qdataset-notifier",
                                                daemon=True)
                self._thread.start()
            self._next_poll = 0.0
            self._cond.notify()

    def remove(self, sub: Subscription) -> None:
        with self._cond:
            subs = self._subs.get(sub.run_key, [])
            if sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subs[sub.run_key]
        sub.stop()

    def watches(self, run_key: int) -> bool:
        return run_key in self._subs

    def flush_delay(self, run_key: int) -> float | None:
        """How soon a writer of ``run_key`` should flush for its subscribers (None: no hurry).

        The shortest ``min_wait`` among them, but no less than MIN_FLUSH_DELAY,
        so a min_wait of 0 does not turn every result into a transaction.
        """
        with self._cond:
            waits = [s.min_wait for s in self._subs.get(run_key, ()) if s.active]
        return max(MIN_FLUSH_DELAY, min(waits)) if waits else None

    # -- news ------------------------------------------------------------------------------
    def notify(self, run_key: int, length: int, completed: bool) -> None:
        """New state of a run (called by the writer after a flush; cheap, never blocks long)."""
        with self._cond:
            for sub in self._subs.get(run_key, ()):
                if length > sub.known_length:
                    sub.known_length = length
                if completed:
                    sub.known_completed = True
            self._cond.notify()

    def delivered(self, sub: Subscription) -> None:
        """A callback returned (called on its delivery thread)."""
        with self._cond:
            sub.busy = False
            if sub.final_sent:
                subs = self._subs.get(sub.run_key, [])
                if sub in subs:
                    subs.remove(sub)
                    if not subs:
                        del self._subs[sub.run_key]
            elif sub.due_at() is not None:
                # News arrived during the call: only then is there anything to decide
                # (each wake-up costs the writer a GIL hand-over).
                self._cond.notify()

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                remote = self._remote_runs()
            if remote and time.monotonic() >= self._next_poll:
                self._poll(remote)
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                deadline = float("inf")
                for subs in self._subs.values():
                    for sub in subs:
                        due = sub.due_at()
                        if due is None:
                            continue
                        if due <= now:
                            sub.dispatch()
                        else:
                            deadline = min(deadline, due)
                if self._remote_runs():
                    deadline = min(deadline, self._next_poll)
                timeout = None if deadline == float("inf") else max(0.0, deadline - now)
                self._cond.wait(timeout)

    def _remote_runs(self) -> dict[int, float]:
        """Runs needing database polling -> shortest min_wait among their subscriptions."""
        runs: dict[int, float] = {}
        for pk, subs in self._subs.items():
            for sub in subs:
                if sub.remote and sub.active and not sub.final_sent:
                    runs[pk] = min(runs.get(pk, float("inf")), sub.min_wait)
        return runs

    def _poll(self, remote: dict[int, float]) -> None:
        interval = max(0.01, min(remote.values()))
        self._next_poll = time.monotonic() + interval
        try:
            if self._feed is None:
                self._feed = self._store.change_feed()
            states = self._feed.changed_runs(list(remote))
        except Exception:
            log.exception("qdataset: checking for new results failed; retrying in 1 s")
            self._next_poll = time.monotonic() + max(interval, 1.0)
            return
        for pk, (length, completed) in states.items():
            self.notify(pk, length, completed)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver pending final calls, then stop every thread (bounded wait)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            pending = [s for subs in self._subs.values() for s in subs
                       if s.known_completed and not s.final_sent]
        if pending:
            with self._cond:
                self._cond.notify()
            for sub in pending:
                sub.wait_finished(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._closed = True
            subs = [s for group in self._subs.values() for s in group]
            self._subs.clear()
            self._cond.notify_all()
        for sub in subs:
            sub.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        for sub in subs:
            sub.join(max(0.0, deadline - time.monotonic()))
        if self._feed is not None:
            self._feed.close()


def _check_callback(callback: Any) -> None:
    """Refuse, at subscribe time, a callback that cannot take (dataset, length, state)."""
    if not callable(callback):
        raise InvalidCallbackError(
            f"callback must be callable as callback(dataset, length, state), got {callback!r}"
        )
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    try:
        signature.bind(None, 0, None)
    except TypeError as exc:
        raise InvalidCallbackError(
            f"callback {getattr(callback, '__qualname__', callback)!r}{signature} cannot be "
            f"called as callback(dataset, length, state) ({exc}); give it three parameters"
        ) from None
