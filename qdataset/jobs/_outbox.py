"""The notifications one JobWatcher is delivering, kept in memory.

The :class:`Outbox` only keeps state; its lock guards that state and is held
for a few dictionary operations, never across a notifier call, a job's
``status()`` or database I/O.  The watcher asks it what is due, marks an
attempt *in flight* (:meth:`Outbox.begin`), calls the notifier without any
lock, then reports the outcome (:meth:`Outbox.settle`) and writes the
database itself.  A notification in flight is never handed to another watcher
(see :meth:`Outbox.drop_idle`), which is what keeps it from being sent twice
when the watcher is stopped in the middle of a slow delivery.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .notifiers import JobEvent, notifier_name

#: A notification is identified by (job id, status).
Key = tuple[str, str]


@dataclass(eq=False)
class Attempt:
    """One notifier that still has to get one event."""

    notifier: Any
    failures: int = 0
    due: float = 0.0  # unix seconds of the next try


@dataclass(eq=False)
class Delivery:
    """One notification being delivered to the notifiers that have not had it yet."""

    event: JobEvent
    todo: list[Attempt]
    errors: list[str] = field(default_factory=list)  # notifiers that gave up
    in_flight: bool = False


@dataclass(frozen=True)
class Outcome:
    """What :meth:`Outbox.settle` decided about one attempt."""

    finished: Delivery | None  # the delivery, once no notifier is left to try
    retry_in: float | None  # seconds until the next try, after a failure
    gave_up: bool  # the notifier failed more than ``retries`` times


class Outbox:
    """Deliveries in progress, by (job id, status); thread-safe, memory only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[Key, Delivery] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, event: JobEvent, notifiers: list[Any], now: float) -> bool:
        """Start delivering ``event`` to every notifier; False if it is already here."""
        key = (event.job_id, event.status)
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = Delivery(event, [Attempt(n, 0, now) for n in notifiers])
            return True

    def due(self, now: float) -> list[tuple[Key, Attempt]]:
        """The attempts whose time has come, oldest notification first."""
        with self._lock:
            return [(key, attempt) for key, delivery in self._items.items()
                    if not delivery.in_flight
                    for attempt in delivery.todo if attempt.due <= now]

    def begin(self, key: Key, attempt: Attempt, abandoned: threading.Event) -> JobEvent | None:
        """Mark ``key`` in flight for ``attempt``; None if it must not be tried now.

        Checked under the lock together with ``abandoned``, so once
        :meth:`drop_idle` ran for a stopped watcher no new attempt starts.
        """
        with self._lock:
            delivery = self._items.get(key)
            if (abandoned.is_set() or delivery is None or delivery.in_flight
                    or attempt not in delivery.todo):
                return None
            delivery.in_flight = True
            return delivery.event

    def settle(self, key: Key, attempt: Attempt, error: BaseException | None, *,
               retries: int, backoff: float, now: float) -> Outcome:
        """Record the result of an attempt that :meth:`begin` started."""
        retry_in = None
        gave_up = False
        with self._lock:
            delivery = self._items[key]
            delivery.in_flight = False
            if error is None:
                delivery.todo.remove(attempt)
            else:
                attempt.failures += 1
                if attempt.failures > retries:
                    gave_up = True
                    delivery.todo.remove(attempt)
                    delivery.errors.append(f"{notifier_name(attempt.notifier)}: {error}")
                else:
                    retry_in = backoff * 2 ** (attempt.failures - 1)
                    attempt.due = now + retry_in
            finished = None
            if not delivery.todo:
                finished = self._items.pop(key)
        return Outcome(finished, retry_in, gave_up)

    def drop_idle(self) -> list[Key]:
        """Forget every delivery not in flight; returns their keys (to hand them over)."""
        with self._lock:
            idle = [key for key, delivery in self._items.items() if not delivery.in_flight]
            for key in idle:
                del self._items[key]
            return idle

    def next_due(self) -> float:
        """When the next attempt is due (unix seconds), ``inf`` if none is waiting."""
        with self._lock:
            dues = [attempt.due for delivery in self._items.values() if not delivery.in_flight
                    for attempt in delivery.todo]
        return min(dues, default=float("inf"))
