"""Analysis callbacks of an experiment: queued in order, run after the jobs, cancellable.

:class:`AnalysisRunner` is owned by :class:`~qdataset.experiment.ExperimentData`.
It is given a worker pool to run callbacks on and an ``on_change`` callback;
it knows nothing else of the experiment (the experiment binds itself into
each callback before handing it over).

A queued callback occupies no thread: it is chained onto the futures it
depends on (:func:`~.workers.when_all_done`) and submitted to the pool only
when the last of them finishes, so experiments whose jobs are slow never
hold threads that other experiments' analysis needs.

Locking: ``AnalysisRunner._lock`` guards the callback records only; it is
never held while a callback runs or while a future is resolved.

>>> runner = AnalysisRunner("exp-id", workers.analysis, on_change)
>>> runner.add(functools.partial(fit, exp), "fit", depends=job_outcomes)
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

from .errors import ExperimentClosedError
from .status import AnalysisStatus, combine_analysis_statuses
from .workers import WorkerPool, format_exception, id_set, resolve, resolved, when_all_done

LOG = logging.getLogger("qdataset.experiment")


class Callback:
    """One queued analysis callback and how it ended."""

    def __init__(self, name: str, callback_id: str | None = None,
                 status: AnalysisStatus = AnalysisStatus.QUEUED) -> None:
        self.callback_id = callback_id or uuid.uuid4().hex
        self.name = name
        self.status = status
        self.error_message: str | None = None
        # -> True if it ran successfully, False otherwise; set once it is over.
        self.future: futures.Future = (futures.Future() if status is AnalysisStatus.QUEUED
                                       else resolved(status is AnalysisStatus.DONE))
        self.acknowledged = False

    def to_row(self) -> dict[str, Any]:
        return {"callback_id": self.callback_id, "name": self.name, "status": self.status.name,
                "error_message": self.error_message}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Callback:
        """A callback record as saved (over: it never runs again)."""
        status = AnalysisStatus[row["status"]]
        callback = cls(row["name"], row["callback_id"], status)
        callback.future = resolved(status is AnalysisStatus.DONE)
        callback.error_message = row["error_message"]
        callback.acknowledged = True
        return callback


def _failed(future: futures.Future) -> bool:
    return future.cancelled() or future.exception() is not None or future.result() is False


class AnalysisRunner:
    """Running analysis callbacks in order, cancelling them, analysis statuses."""

    def __init__(self, owner: str, pool: WorkerPool, on_change: Callable[[], None]) -> None:
        self._owner = owner  # the experiment id, for messages
        self._pool = pool
        self._on_change = on_change
        self._lock = threading.Lock()
        self._callbacks: OrderedDict[str, Callback] = OrderedDict()
        self._local = threading.local()  # which callback this thread is running

    def add(self, fn: Callable[[], Any], name: str, depends: Iterable[futures.Future]) -> str:
        """Queue ``fn()`` to run once ``depends`` and the earlier callbacks succeeded.

        If one of them fails, the callback is CANCELLED instead.  Returns its id.
        """
        record = Callback(name)
        with self._lock:
            waits = [*depends, *(c.future for c in self._callbacks.values()
                                 if not c.acknowledged)]
            self._callbacks[record.callback_id] = record
        when_all_done(waits, lambda: self._ready(record, fn, waits), early=_failed)
        self._on_change()
        return record.callback_id

    def _ready(self, record: Callback, fn: Callable[[], Any],
               waits: list[futures.Future]) -> None:
        """Its dependencies are over (runs on the thread that finished the last one)."""
        if any(f.done() and _failed(f) for f in waits):
            self._cancel_one(record, "not run: a job or an earlier analysis callback did not "
                                     "succeed")
            return
        try:
            self._pool.submit(self._run, record, fn)
        except ExperimentClosedError:
            self._cancel_one(record, "not run: the experiment was closed")
        except Exception as exc:  # noqa: BLE001 - a callback must never stay QUEUED forever
            self._cancel_one(record, f"not run: {exc}")

    def _run(self, record: Callback, fn: Callable[[], Any]) -> None:
        with self._lock:
            if record.status is not AnalysisStatus.QUEUED:
                return  # cancelled while waiting for a thread
            record.status = AnalysisStatus.RUNNING
        self._on_change()
        self._local.running = record.callback_id
        succeeded = False
        try:
            fn()
            succeeded = True
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback
            with self._lock:
                record.status = AnalysisStatus.ERROR
                record.error_message = format_exception(exc)
                later = list(self._callbacks.values())
                later = later[later.index(record) + 1:]
            # Last first, so no cancellation runs down a chain of dependants.
            for other in reversed(later):
                self._cancel_one(other, f"cancelled because analysis callback "
                                        f"{record.name!r} failed")
            LOG.warning("analysis callback %s of experiment %s failed:\n%s", record.name,
                        self._owner, record.error_message)
        else:
            with self._lock:
                record.status = AnalysisStatus.DONE
        finally:
            self._local.running = None
            self._on_change()  # noted (and auto-saved) before anyone waiting is woken
            resolve(record.future, succeeded)

    def _cancel_one(self, record: Callback, reason: str) -> bool:
        """Cancel a queued callback; False if it is running (it cannot be stopped)."""
        with self._lock:
            if record.status is not AnalysisStatus.QUEUED:
                return record.status is not AnalysisStatus.RUNNING
            record.status = AnalysisStatus.CANCELLED
            record.error_message = reason
        resolve(record.future, False)
        return True

    def cancel(self, ids: str | Iterable[str] | None = None,
               reason: str = "cancelled by cancel_analysis()") -> bool:
        """Cancel queued callbacks (all, or those with the given ids); False if one runs."""
        wanted = id_set(ids)
        with self._lock:
            records = [c for cid, c in self._callbacks.items() if wanted is None or cid in wanted]
        answer = all([self._cancel_one(c, reason) for c in reversed(records)])
        self._on_change()
        return answer

    # -- waiting ---------------------------------------------------------------------------
    def unfinished(self) -> list[futures.Future]:
        """Futures of unfinished callbacks; inside a callback, only those before it."""
        running = getattr(self._local, "running", None)
        out = []
        with self._lock:
            for cid, callback in self._callbacks.items():
                if cid == running:
                    break
                out.append(callback.future)
        return [f for f in out if not f.done()]

    def acknowledge_finished(self) -> None:
        """Finished callbacks are no longer waited on by callbacks added from now on."""
        with self._lock:
            for callback in self._callbacks.values():
                if callback.future.done():
                    callback.acknowledged = True

    # -- status and records ----------------------------------------------------------------
    def status(self) -> AnalysisStatus:
        """Combined analysis status: ERROR > CANCELLED > RUNNING > QUEUED > DONE."""
        with self._lock:
            return combine_analysis_statuses(c.status for c in self._callbacks.values())

    def has_callbacks(self) -> bool:
        with self._lock:
            return bool(self._callbacks)

    def errors(self) -> str:
        """Tracebacks of failed analysis callbacks."""
        with self._lock:
            return "".join(f"\n[Analysis Callback ID: {c.callback_id}] {c.name}: "
                           f"{c.error_message}"
                           for c in self._callbacks.values() if c.status is AnalysisStatus.ERROR)

    def records(self) -> list[dict[str, Any]]:
        """The callback records: id, name, status, error message or reason."""
        with self._lock:
            return [c.to_row() for c in self._callbacks.values()]

    def restore(self, rows: Iterable[dict[str, Any]]) -> None:
        """Take the saved callback records of a loaded experiment."""
        with self._lock:
            for row in rows:
                callback = Callback.from_row(row)
                self._callbacks[callback.callback_id] = callback
