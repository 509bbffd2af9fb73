"""Analysis callbacks of an experiment: queued in order, run after the jobs, cancellable.

:class:`AnalysisRunner` is a base class of :class:`~qdataset.experiment.ExperimentData`;
it works on the experiment's ``_lock``, ``_jobs``, ``_callbacks``, ``_local``,
``_note_status`` and ``_changed``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import TYPE_CHECKING, Any

from .status import AnalysisStatus, combine_analysis_statuses
from .workers import format_exception, id_set, resolve, resolved, submit

if TYPE_CHECKING:
    from .experiment_data import ExperimentData

LOG = logging.getLogger("qdataset.experiment")


class Callback:
    """One queued analysis callback and how it ended."""

    def __init__(self, name: str, callback_id: str | None = None,
                 status: AnalysisStatus = AnalysisStatus.QUEUED) -> None:
        self.callback_id = callback_id or uuid.uuid4().hex
        self.name = name
        self.status = status
        self.error_message: str | None = None
        self.cancel_request: futures.Future = futures.Future()
        self.future: futures.Future = resolved(status is AnalysisStatus.DONE)
        self.acknowledged = False

    def to_row(self) -> dict[str, Any]:
        return {"callback_id": self.callback_id, "name": self.name, "status": self.status.name,
                "error_message": self.error_message}


class AnalysisRunner:
    """Running analysis callbacks, cancelling them, waiting for results, analysis statuses."""

    def add_analysis_callback(self, callback: Callable[..., Any], **kwargs: Any) -> str:
        """Run ``callback(self, **kwargs)`` once the jobs and earlier callbacks finish.

        Callbacks run in the order they were added.  If a job or an earlier
        callback did not succeed, the callback is CANCELLED instead of run; a
        callback that raises is recorded as ERROR with its traceback, and the
        callbacks queued after it are CANCELLED.  Returns the callback id.

        >>> def fit(exp, threshold=0.5):
        ...     exp.add_analysis_results(AnalysisResult("p0", value=...))
        >>> exp.add_analysis_callback(fit, threshold=0.9)
        """
        with self._lock:
            record = Callback(getattr(callback, "__name__", repr(callback)))
            depends = [r.outcome for r in self._jobs.values() if not r.acknowledged]
            depends += [c.future for c in self._callbacks.values() if not c.acknowledged]
            self._callbacks[record.callback_id] = record
            record.future = submit("analysis", self._run_callback, record, depends,
                                   callback, kwargs)
        self._note_status()
        return record.callback_id

    def _run_callback(self, record: Callback, depends: list[futures.Future],
                      callback: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
        while True:
            if record.cancel_request.done():
                return False
            if any(f.done() and (f.exception() is not None or f.result() is False)
                   for f in depends):
                self._cancel_callback(record, "not run: a job or an earlier analysis callback "
                                      "did not succeed")
                return False
            pending = [f for f in depends if not f.done()]
            if not pending:
                break
            futures.wait([*pending, record.cancel_request], return_when=futures.FIRST_COMPLETED)
        with self._lock:
            if record.status is not AnalysisStatus.QUEUED:
                return False
            record.status = AnalysisStatus.RUNNING
        self._note_status()
        self._local.running = record.callback_id
        try:
            callback(self, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback
            with self._lock:
                record.status = AnalysisStatus.ERROR
                record.error_message = format_exception(exc)
                later = list(self._callbacks.values())
                later = later[later.index(record) + 1:]
                for other in later:
                    self._cancel_callback(other, f"cancelled because analysis callback "
                                                 f"{record.name!r} failed")
            LOG.warning("analysis callback %s of experiment %s failed:\n%s", record.name,
                        self.experiment_id, record.error_message)
            return False
        else:
            with self._lock:
                record.status = AnalysisStatus.DONE
            return True
        finally:
            self._local.running = None
            self._note_status()
            self._changed()

    def _cancel_callback(self, record: Callback, reason: str) -> bool:
        """Cancel a queued callback; False if it is running (it cannot be stopped)."""
        with self._lock:
            if record.status is AnalysisStatus.QUEUED:
                record.status = AnalysisStatus.CANCELLED
                record.error_message = reason
                resolve(record.cancel_request, True)
                return True
            return record.status is not AnalysisStatus.RUNNING

    def cancel_analysis(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel queued analysis callbacks (all, or those with the given ids).

        A running callback cannot be stopped: then the answer is False.
        """
        with self._lock:
            wanted = id_set(ids)
            records = [c for cid, c in self._callbacks.items() if wanted is None or cid in wanted]
            answer = all([self._cancel_callback(c, "cancelled by cancel_analysis()")
                          for c in reversed(records)])
        self._note_status()
        self._changed()
        return answer

    def _pending_futures(self, include_jobs: bool = True) -> list[futures.Future]:
        """Futures to wait for; inside a callback, not that callback nor later ones."""
        with self._lock:
            out = [r.outcome for r in self._jobs.values()] if include_jobs else []
            running = getattr(self._local, "running", None)
            for cid, callback in self._callbacks.items():
                if cid == running:
                    break
                out.append(callback.future)
        return [f for f in out if not f.done()]

    def block_for_results(self, timeout: float | None = None) -> ExperimentData:
        """Wait until all jobs and analysis callbacks have finished (or ``timeout`` s passed).

        Returns self, so ``exp.block_for_results().status()`` reads naturally.
        Jobs and callbacks that finished are then no longer waited on by new
        callbacks (as in qiskit-experiments).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = self._pending_futures()
            if not pending:
                break
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            futures.wait(pending, timeout=remaining)
            if deadline is not None and time.monotonic() >= deadline:
                LOG.info("block_for_results: timed out waiting for experiment %s",
                         self.experiment_id)
                break
        with self._lock:
            for record in self._jobs.values():
                if record.final:
                    record.acknowledged = True
            for callback in self._callbacks.values():
                if callback.future.done():
                    callback.acknowledged = True
        self._note_status()
        return self

    # -- status and errors ------------------------------------------------------------------
    def analysis_status(self) -> AnalysisStatus:
        """Combined analysis status: ERROR > CANCELLED > RUNNING > QUEUED > DONE."""
        with self._lock:
            return combine_analysis_statuses(c.status for c in self._callbacks.values())


    def analysis_errors(self) -> str:
        """Tracebacks of failed analysis callbacks."""
        with self._lock:
            return "".join(f"\n[Analysis Callback ID: {c.callback_id}] {c.name}: "
                           f"{c.error_message}"
                           for c in self._callbacks.values() if c.status is AnalysisStatus.ERROR)


    def analysis_callbacks(self) -> list[dict[str, Any]]:
        """Records of the analysis callbacks: id, name, status, error message or reason."""
        with self._lock:
            return [c.to_row() for c in self._callbacks.values()]
