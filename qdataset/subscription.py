"""Subscriptions: callbacks told about new results, from a background notifier thread.

One :class:`Notifier` per store owns one thread that decides when each
subscription is due.  It learns about new rows in two ways:

* the writing DataSet's flush tells it directly (same process and store:
  no database round trip, no polling), and
* for runs written elsewhere (another process, store or machine), a
  :class:`ChangeWatcher` checks cheaply at the subscriptions' ``min_wait``
  (SQLite: ``PRAGMA data_version``; PostgreSQL: LISTEN/NOTIFY), then reads
  only the changed runs' rows of the ``runs`` table; nothing is left behind.

Callbacks run on each subscription's own delivery thread, so a slow or
failing callback only delays itself: never ``add_result``, never another
subscriber.  Between calls only the latest length is remembered, so memory
stays bounded however slow a subscriber is.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dataset import DataSet
    from .store import Store

log = logging.getLogger("qdataset")

Callback = Callable[["DataSet", int, Any], Any]

_ids = itertools.count(1)

#: Marks the delivery threads, so reads made by a callback know where they run.
_delivery = threading.local()


#: Shortest flush delay subscribers can ask of a writer, in seconds.  Every flush
#: is a transaction; measured with five reading subscribers, flushing every 50 ms
#: cost a busy writer 10-25% of its speed, every 100 ms about 5%.
MIN_FLUSH_DELAY = 0.1


def in_callback() -> bool:
    """True on a subscription's delivery thread (inside a callback)."""
    return getattr(_delivery, "active", False)


class Subscription:
    """A registered callback; returned (opaquely) by :meth:`DataSet.subscribe`."""

    def __init__(self, dataset: DataSet, callback: Callback, min_wait_ms: float,
                 min_count: int, state: Any, start_length: int) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        if min_wait_ms < 0 or min_count < 1:
            raise ValueError("min_wait must be >= 0 ms and min_count >= 1")
        self.id = f"sub-{next(_ids)}"
        self.dataset = dataset
        self.callback = callback
        self.min_wait = min_wait_ms / 1000.0
        self.min_count = int(min_count)
        self.state = state
        self.run_pk = dataset._run.pk
        self.remote = not dataset._writer
        # What the notifier knows, and what the callback was last told.
        self.known_length = start_length
        self.known_completed = False
        self.last_length = start_length
        self.last_call = float("-inf")
        self.final_sent = False
        self.active = True
        self.busy = False
        self.calls = 0  # callbacks made, the final one included
        self.final_calls = 0  # 1 once the completion call was made
        self._wake = threading.Condition()
        self._job: tuple[int, bool] | None = None
        self._thread = threading.Thread(target=self._deliver_loop,
                                        name=f"qdataset-{self.id}", daemon=True)
        self._notifier: Notifier | None = None

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
                    return
                length, final = self._job
                self._job = None
            try:
                self.callback(self.dataset, length, self.state)
            except Exception:
                log.exception("qdataset: subscription %s callback raised (length %d)",
                              self.id, length)
            self.calls += 1
            if final:
                self.final_calls += 1
            notifier = self._notifier
            if notifier is not None:
                notifier._delivered(self)
            if final:
                return

    def _stop(self) -> None:
        with self._wake:
            self.active = False
            self._wake.notify()


class Notifier:
    """The store's notifier thread: throttles, coalesces and dispatches notifications."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._subs: dict[int, list[Subscription]] = {}  # run pk -> subscriptions
        self._thread: threading.Thread | None = None
        self._closed = False
        self._watcher: ChangeWatcher | None = None
        self._next_poll = 0.0

    # -- registration ------------------------------------------------------------------------
    def add(self, sub: Subscription) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the store is closed")
            sub._notifier = self
            self._subs.setdefault(sub.run_pk, []).append(sub)
            sub._thread.start()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qdataset-notifier",
                                                daemon=True)
                self._thread.start()
            self._next_poll = 0.0
            self._cond.notify()

    def remove(self, sub: Subscription) -> None:
        with self._cond:
            subs = self._subs.get(sub.run_pk, [])
            if sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subs[sub.run_pk]
        sub._stop()

    def watches(self, run_pk: int) -> bool:
        return run_pk in self._subs

    def flush_delay(self, run_pk: int) -> float | None:
        """How soon a writer of ``run_pk`` should flush for its subscribers (None: no hurry).

        The shortest ``min_wait`` among them, but no less than MIN_FLUSH_DELAY,
        so a min_wait of 0 does not turn every result into a transaction.
        """
        with self._cond:
            waits = [s.min_wait for s in self._subs.get(run_pk, ()) if s.active]
        return max(MIN_FLUSH_DELAY, min(waits)) if waits else None

    # -- news ------------------------------------------------------------------------------
    def notify(self, run_pk: int, length: int, completed: bool) -> None:
        """New state of a run (called by the writer after a flush; cheap, never blocks long)."""
        with self._cond:
            for sub in self._subs.get(run_pk, ()):
                if length > sub.known_length:
                    sub.known_length = length
                if completed:
                    sub.known_completed = True
            self._cond.notify()

    def _delivered(self, sub: Subscription) -> None:
        with self._cond:
            sub.busy = False
            if sub.final_sent:
                subs = self._subs.get(sub.run_pk, [])
                if sub in subs:
                    subs.remove(sub)
                    if not subs:
                        del self._subs[sub.run_pk]
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
            if self._watcher is None:
                self._watcher = ChangeWatcher(self._store)
            states = self._watcher.changed_runs(list(remote))
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
        while pending and time.monotonic() < deadline:
            with self._cond:
                self._cond.notify()
            time.sleep(0.01)
            pending = [s for s in pending if not s.final_sent or s.busy]
        with self._cond:
            self._closed = True
            subs = [s for group in self._subs.values() for s in group]
            self._subs.clear()
            self._cond.notify_all()
        for sub in subs:
            sub._stop()
        current = threading.current_thread()
        for thread in [self._thread, *(s._thread for s in subs)]:
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._watcher is not None:
            self._watcher.close()


class ChangeWatcher:
    """Cheap detection of rows written by other connections, processes or machines.

    SQLite: ``PRAGMA data_version`` on a held connection changes whenever
    another connection commits; only then is the ``runs`` table queried.
    PostgreSQL: writers send ``NOTIFY qdataset_runs, '<run pk>'`` inside their
    transactions; a held connection LISTENs, and only announced runs are queried.
    """

    def __init__(self, store: Store) -> None:
        from .store.dialect import CHANGE_CHANNEL

        self._storage = store._storage
        self._dialect = store.dialect
        pooled = store.engine.raw_connection()
        self._driver = pooled.driver_connection
        pooled.detach()  # session state (LISTEN) must not go back to the pool
        self._data_version: int | None = None
        self._last: dict[int, tuple[int, bool]] = {}
        if self._dialect == "postgresql":
            try:
                self._driver.autocommit = True
                self._driver.execute(f"LISTEN {CHANGE_CHANNEL}")
            except BaseException:
                self._driver.close()
                raise

    def changed_runs(self, run_pks: list[int]) -> dict[int, tuple[int, bool]]:
        """(length, completed) of the runs whose state changed since the last call."""
        unseen = [pk for pk in run_pks if pk not in self._last]
        if self._dialect == "sqlite":
            cursor = self._driver.cursor()
            version = cursor.execute("PRAGMA data_version").fetchone()[0]
            cursor.close()
            if version == self._data_version and not unseen:
                return {}
            self._data_version = version
            wanted = run_pks
        elif self._dialect == "postgresql":
            announced = {int(n.payload) for n in self._driver.notifies(timeout=0)}
            wanted = [pk for pk in run_pks if pk in announced] + unseen
            if not wanted:
                return {}
        else:
            wanted = run_pks
        states = self._storage.run_states(wanted)
        changed = {pk: state for pk, state in states.items() if self._last.get(pk) != state}
        self._last.update(states)
        return changed

    def close(self) -> None:
        try:
            self._driver.close()
        except Exception:  # noqa: BLE001 - closing at shutdown
            pass
