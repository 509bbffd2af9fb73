"""Jobs of an experiment: their records, the threads that wait for them, timeouts, cancellation.

:class:`JobRunner` is owned by :class:`~qdataset.experiment.ExperimentData`.
It is given what it needs and nothing more: the experiment's :class:`DataRows`
(where results become rows), a worker pool to wait on jobs, the shared
:class:`BackendInfo`, and an ``on_change`` callback that the experiment uses
to note its status and auto-save.

Locking: ``JobRunner._lock`` guards the job records only.  It is never held
while calling a job (``status()``, ``result()``, ``cancel()`` may be remote
calls), while writing rows, or while resolving futures (their callbacks
start analysis).  Calls take a snapshot under the lock and work outside it.

>>> runner = JobRunner("exp-id", rows, workers.jobs, BackendInfo(backend), on_change)
>>> runner.add_jobs([job], timeout=60)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from typing import Any

from . import jobs as job_tools
from .errors import ExperimentDataError, UnsupportedResultError
from .rows import DataRows
from .status import JobStatus, combine_job_statuses
from .workers import WorkerPool, format_exception, id_set, resolve, when_all_done

LOG = logging.getLogger("qdataset.experiment")


class BackendInfo:
    """The experiment's backend object and its name (a job may tell the name first)."""

    def __init__(self, backend: Any = None, name: str | None = None) -> None:
        self._lock = threading.Lock()
        self.backend = backend
        self.name = name if backend is None else job_tools.backend_name(backend)

    def set(self, backend: Any) -> None:
        """Use ``backend`` (and its name) from now on."""
        name = job_tools.backend_name(backend)
        with self._lock:
            self.backend, self.name = backend, name

    def adopt(self, name: str, backend: Callable[[], Any]) -> None:
        """Take ``name`` (and ``backend()``) if no backend is known yet."""
        with self._lock:
            if self.name is not None:
                return
            self.name = name
        try:
            found = backend() if self.backend is None else None
        except Exception:  # noqa: BLE001 - some job classes raise for backend()
            found = None
        with self._lock:
            if self.backend is None:
                self.backend = found


class JobRecord:
    """qdataset's own record of one job: it outlives the job object."""

    def __init__(self, job_id: str, job: Any, backend_name: str | None, kind: str,
                 submitted_at: float, status: JobStatus) -> None:
        self.job_id = job_id
        self.job = job
        self.backend_name = backend_name
        self.kind = kind
        self.submitted_at = submitted_at
        self.finished_at: float | None = None
        self.status = status  # the recorded status; final once ``outcome`` is resolved
        self.seen = status  # the job's own status when it was last asked
        self.error_message: str | None = None
        self.outcome: futures.Future = futures.Future()  # -> True if DONE, else False
        self.claimed = False  # someone is finishing it (first caller wins)
        self.acknowledged = False  # seen finished by block_for_results / cancel_jobs

    @property
    def final(self) -> bool:
        return self.outcome.done()

    def known_status(self) -> JobStatus:
        """The status from what is known, without asking the job."""
        if self.final or self.job is None:
            return self.status
        if self.seen.is_final:
            return JobStatus.RUNNING  # finished on the backend, data still being collected
        return self.seen

    def observe(self) -> JobStatus:
        """Ask the job (maybe a remote call; never under a lock), then :meth:`known_status`."""
        if not self.final and self.job is not None:
            live = job_tools.live_status(self.job)
            if live is not None:
                self.seen = live
        return self.known_status()

    def to_row(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "backend_name": self.backend_name, "kind": self.kind,
                "submitted_at": self.submitted_at, "finished_at": self.finished_at,
                "status": self.known_status().name, "error_message": self.error_message}

    def twin(self) -> JobRecord:
        """A copy for another experiment; a finished record stays finished."""
        other = JobRecord(self.job_id, self.job, self.backend_name, self.kind,
                          self.submitted_at, self.status)
        if self.final or self.job is None:
            other.finished_at = self.finished_at
            other.error_message = self.error_message
            resolve(other.outcome, self.status is JobStatus.DONE)
            other.acknowledged = self.acknowledged
        return other

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """A finished record as saved (the job object does not survive a save)."""
        record = cls(row["job_id"], None, row["backend_name"], row["kind"] or "",
                     row["submitted_at"], JobStatus[row["status"]])
        record.finished_at = row["finished_at"]
        record.error_message = row["error_message"]
        resolve(record.outcome, record.status is JobStatus.DONE)
        record.acknowledged = True
        return record


class JobRunner:
    """Adding jobs and results, collecting them, timeouts, cancellation, job statuses."""

    def __init__(self, owner: str, rows: DataRows, pool: WorkerPool, backend: BackendInfo,
                 on_change: Callable[[], None]) -> None:
        self._owner = owner  # the experiment id, for messages
        self._rows = rows
        self._pool = pool
        self._backend = backend
        self._on_change = on_change
        self._lock = threading.Lock()
        self._records: OrderedDict[str, JobRecord] = OrderedDict()

    # -- results and jobs in ---------------------------------------------------------------
    def add_data(self, data: Any) -> None:
        """Store a Result, PrimitiveResult, dict or list of those (see ExperimentData)."""
        items = data if isinstance(data, list) else [data]
        rows: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, dict):
                rows.append(item)
            elif job_tools.is_job(item):
                self.add_jobs(item)
            else:
                job_id = getattr(item, "job_id", None)
                job_id = None if callable(job_id) or job_id is None else str(job_id)
                try:
                    new = job_tools.rows_from_result(item, job_id)
                except job_tools.ResultFailedError as exc:
                    self._record_result_job(job_id, JobStatus.ERROR, str(exc), exc.rows)
                    continue
                with self._lock:
                    known = job_id is not None and job_id in self._records
                if job_id is not None and not known:
                    self._record_result_job(job_id, JobStatus.DONE, None, new)
                else:
                    rows.extend(new)
        self._rows.add(rows)
        self._on_change()

    def _record_result_job(self, job_id: str | None, status: JobStatus, message: str | None,
                           rows: list[dict[str, Any]]) -> None:
        if job_id is None:
            self._rows.add(rows)
            if status is JobStatus.ERROR:
                raise ExperimentDataError(
                    f"the result reports failure ({message}); the rows of the circuits "
                    "that succeeded were added")
            return
        with self._lock:
            record = self._records.get(job_id)
            if record is None:
                record = JobRecord(job_id, None, self._backend.name, "result", time.time(),
                                   JobStatus.RUNNING)
                self._records[job_id] = record
        self._finish(record, status, message, rows)

    def add_jobs(self, jobs: Any, timeout: float | None = None) -> None:
        """Collect the results of ``jobs`` (one job or nested lists; see ExperimentData)."""
        job_list = list(_flatten(jobs))
        for job in job_list:
            if not job_tools.is_job(job):
                raise UnsupportedResultError(
                    f"{type(job).__name__} is not a job (it needs job_id(), status() and "
                    "result()); pass results with add_data() instead")
        # Ask the jobs first: these may be remote calls, made before taking the lock.
        asked = [(str(job.job_id()), job, job_tools.job_backend_name(job),
                  job_tools.live_status(job) or JobStatus.INITIALIZING) for job in job_list]
        added: list[JobRecord] = []
        for job_id, job, name, status in asked:
            if name is not None:
                self._backend.adopt(name, job.backend)
                if name != self._backend.name:
                    LOG.warning("job %s ran on %s, not on this experiment's backend %s",
                                job_id, name, self._backend.name)
            record = JobRecord(job_id, job, name or self._backend.name, job_tools.job_kind(job),
                               time.time(), JobStatus.RUNNING if status.is_final else status)
            record.seen = status
            with self._lock:
                if job_id in self._records:
                    LOG.warning("job %s is already part of experiment %s; skipped",
                                job_id, self._owner)
                    continue
                self._records[job_id] = record
            added.append(record)
        for record in added:
            self._follow(record)
        if timeout is not None and added:
            self._start_timeout(added, float(timeout))
        self._on_change()

    def jobs(self) -> list[Any]:
        """The job objects (None for jobs known only from records, e.g. after load)."""
        return [record.job for record in self._snapshot()]

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._records)

    def _snapshot(self) -> list[JobRecord]:
        with self._lock:
            return list(self._records.values())

    # -- collecting ------------------------------------------------------------------------
    def _follow(self, record: JobRecord) -> None:
        """Have a worker thread wait for the job (a record is never left unfinished)."""
        try:
            self._pool.submit(self._collect, record)
        except ExperimentDataError as exc:  # closed, or no thread could be started
            self._finish(record, JobStatus.ERROR, f"its result could not be collected: {exc}")

    def _collect(self, record: JobRecord) -> None:
        """Pool thread: wait for one job and turn its result into rows and a final status."""
        job = record.job
        try:
            result = job.result()
        except BaseException as exc:  # noqa: BLE001 - recorded, never lost
            live = job_tools.live_status(job)
            if live is JobStatus.CANCELLED or isinstance(exc, futures.CancelledError):
                self._finish(record, JobStatus.CANCELLED, "the job was cancelled on the backend")
            else:
                message = job_tools.error_message(job) or format_exception(exc)
                self._finish(record, JobStatus.ERROR, message)
            return
        try:
            rows = job_tools.rows_from_result(result, record.job_id)
        except job_tools.ResultFailedError as exc:
            self._finish(record, JobStatus.ERROR, str(exc), exc.rows)
        except BaseException as exc:  # noqa: BLE001
            self._finish(record, JobStatus.ERROR,
                         "its result could not be stored:\n" + format_exception(exc))
        else:
            self._finish(record, JobStatus.DONE, None, rows)

    def _finish(self, record: JobRecord, status: JobStatus, message: str | None,
                rows: Sequence[dict[str, Any]] = ()) -> bool:
        """Make ``status`` the job's final status (first caller wins); add its rows."""
        with self._lock:
            won = not (record.claimed or record.final)
            record.claimed = True
        if not won:
            if rows:
                LOG.warning("job %s finished after it was recorded as %s; its results "
                            "were not added", record.job_id, record.status.name)
            return False
        try:
            self._rows.add(rows)  # a database write: outside the lock
        except Exception as exc:  # noqa: BLE001 - e.g. the run was completed meanwhile
            status = JobStatus.ERROR
            message = "its rows could not be stored:\n" + format_exception(exc)
        with self._lock:
            record.status = status
            record.error_message = message
            record.finished_at = time.time()
        # Resolving runs the analysis chain's callbacks: never under the lock.
        resolve(record.outcome, status is JobStatus.DONE)
        if status is JobStatus.ERROR:
            LOG.warning("job %s of experiment %s failed: %s", record.job_id, self._owner,
                        message)
        self._on_change()
        return True

    # -- timeouts and cancelling -----------------------------------------------------------
    def _start_timeout(self, records: list[JobRecord], timeout: float) -> None:
        """Cancel the records still unfinished after ``timeout`` s; the timer
        thread ends early once all of them are finished."""
        reason = f"not finished within the add_jobs timeout of {timeout} s"
        timer = threading.Timer(timeout, lambda: self._cancel_records(
            [r for r in records if not r.final], reason))
        timer.name, timer.daemon = "qdataset-job-timeout", True
        timer.start()
        when_all_done([r.outcome for r in records], timer.cancel)

    def _cancel_records(self, records: Iterable[JobRecord], reason: str) -> bool:
        all_cancelled = True
        for record in records:
            if record.final:
                record.acknowledged = True
                continue
            cancelled = False
            if record.job is not None and callable(getattr(record.job, "cancel", None)):
                try:
                    answer = record.job.cancel()
                    cancelled = answer is None or bool(answer)
                except Exception as exc:  # noqa: BLE001 - cannot cancel: recorded anyway
                    LOG.info("job %s could not be cancelled: %s", record.job_id, exc)
            if not cancelled:
                all_cancelled = False
                reason_text = f"{reason} (the backend could not stop it)"
            else:
                reason_text = reason
            if not self._finish(record, JobStatus.CANCELLED, reason_text):
                record.outcome.result()  # finished by its collector just now: wait for it
            record.acknowledged = True
        return all_cancelled

    def cancel(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel unfinished jobs (all, or those with the given ids); see ExperimentData."""
        wanted = id_set(ids)
        records = [r for r in self._snapshot() if wanted is None or r.job_id in wanted]
        return self._cancel_records(records, "cancelled by cancel_jobs()")

    # -- waiting ---------------------------------------------------------------------------
    def outcomes(self, unacknowledged: bool = False) -> list[futures.Future]:
        """The jobs' outcome futures (only those not yet acknowledged, if asked)."""
        return [r.outcome for r in self._snapshot() if not (unacknowledged and r.acknowledged)]

    def acknowledge_finished(self) -> None:
        """Finished jobs are no longer waited on by callbacks added from now on."""
        for record in self._snapshot():
            if record.final:
                record.acknowledged = True

    # -- status and errors -----------------------------------------------------------------
    def status(self, ask: bool = True) -> JobStatus:
        """Combined job status; ``ask``: ask each unfinished job first (outside the lock)."""
        records = self._snapshot()
        return combine_job_statuses(r.observe() if ask else r.known_status() for r in records)

    def refresh(self) -> None:
        """Ask each unfinished job for its status (remote calls: never under a lock)."""
        for record in self._snapshot():
            record.observe()

    def has_jobs(self) -> bool:
        with self._lock:
            return bool(self._records)

    def errors(self) -> str:
        """Error messages of failed jobs, one ``[Job ID: ...]`` entry per job."""
        return "".join(f"\n[Job ID: {r.job_id}]: {r.error_message or 'failed'}"
                       for r in self._snapshot() if r.observe() is JobStatus.ERROR)

    def records(self, ask: bool = True) -> list[dict[str, Any]]:
        """The job records as rows; ``ask``: refresh unfinished jobs' statuses first."""
        if ask:
            self.refresh()
        return [r.to_row() for r in self._snapshot()]

    # -- copies and loads ------------------------------------------------------------------
    def adopt_records(self, records: Iterable[JobRecord]) -> None:
        """Take over records (from a copy or a load); unfinished jobs are followed here too."""
        follow = []
        with self._lock:
            for record in records:
                self._records[record.job_id] = record
                if not record.final:
                    follow.append(record)
        for record in follow:
            self._follow(record)

    def twins(self) -> list[JobRecord]:
        """Copies of the records, for a copied experiment."""
        return [record.twin() for record in self._snapshot()]


def _flatten(jobs: Any) -> Iterable[Any]:
    if job_tools.is_job(jobs):
        yield jobs
        return
    if isinstance(jobs, list | tuple):
        for item in jobs:
            yield from _flatten(item)
        return
    yield jobs  # rejected by add_jobs with a helpful message
