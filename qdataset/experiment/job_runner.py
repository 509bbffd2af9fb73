"""Jobs of an experiment: their records, the threads that wait for them, timeouts and cancellation.

:class:`JobRunner` is a base class of :class:`~qdataset.experiment.ExperimentData`:
it turns jobs (and results handed to ``add_data``) into data rows and final
job statuses.  It works on the experiment's ``_lock``, ``_jobs``, backend
fields, ``_add_rows``, ``_note_status`` and ``_changed``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent import futures
from typing import Any

from . import jobs as job_tools
from .errors import ExperimentDataError, UnsupportedResultError
from .status import JobStatus, combine_job_statuses
from .workers import format_exception, id_set, resolve, submit

LOG = logging.getLogger("qdataset.experiment")


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
        self.error_message: str | None = None
        self.outcome: futures.Future = futures.Future()  # -> True if DONE, else False
        self.acknowledged = False  # seen finished by block_for_results / cancel_jobs

    @property
    def final(self) -> bool:
        return self.outcome.done()

    def current_status(self) -> JobStatus:
        if self.final or self.job is None:
            return self.status
        live = job_tools.live_status(self.job)
        if live is None or live is JobStatus.DONE:
            return JobStatus.RUNNING  # finished on the backend, data still being collected
        return live

    def to_row(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "backend_name": self.backend_name, "kind": self.kind,
                "submitted_at": self.submitted_at, "finished_at": self.finished_at,
                "status": self.current_status().name, "error_message": self.error_message}


class JobRunner:
    """Adding jobs and results, collecting them, timeouts, cancellation, job statuses."""

    # -- results and jobs in ---------------------------------------------------------------------
    def add_data(self, data: Any) -> None:
        """Add data: a qiskit Result or PrimitiveResult, a dict, or a list of those.

        Dicts are stored as given (known keys such as ``counts`` and ``shots``
        in their own columns, the rest as JSON).  A Result's job id gets a job
        record; a failed Result records that job as ERROR.  Job objects are
        handed to :meth:`add_jobs`.
        """
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
                if job_id is not None and job_id not in self._jobs:
                    self._record_result_job(job_id, JobStatus.DONE, None, new)
                else:
                    rows.extend(new)
        if rows:
            with self._lock:
                self._add_rows(rows)
        self._note_status()
        self._changed()

    def _record_result_job(self, job_id: str | None, status: JobStatus, message: str | None,
                           rows: list[dict[str, Any]]) -> None:
        if job_id is None:
            with self._lock:
                self._add_rows(rows)
            if status is JobStatus.ERROR:
                raise ExperimentDataError(
                    f"the result reports failure ({message}); the rows of the circuits "
                    "that succeeded were added")
            return
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                record = JobRecord(job_id, None, self._backend_name, "result", time.time(),
                                   JobStatus.RUNNING)
                self._jobs[job_id] = record
        self._finish(record, status, message, rows)


    # -- jobs ------------------------------------------------------------------------------------
    def add_jobs(self, jobs: Any, timeout: float | None = None) -> None:
        """Collect the results of ``jobs`` (one job or a list) into this experiment.

        Accepts qiskit jobs (``AerSimulator().run``, ``GenericBackendV2.run``,
        Aer ``SamplerV2``/``EstimatorV2`` jobs) and any object with ``job_id()``,
        ``status()`` and ``result()``.  Each job is waited on by a thread of a
        pool; its rows arrive in :attr:`dataset` as soon as it finishes.

        ``timeout``: jobs not finished that many seconds from now are recorded
        as CANCELLED (by timeout) in qdataset's records and cancelled on the
        backend where possible; results arriving later are discarded.  A
        running Aer job cannot be stopped, only queued ones.
        """
        job_list = list(_flatten(jobs))
        for job in job_list:
            if not job_tools.is_job(job):
                raise UnsupportedResultError(
                    f"{type(job).__name__} is not a job (it needs job_id(), status() and "
                    "result()); pass results with add_data() instead")
        added: list[JobRecord] = []
        with self._lock:
            for job in job_list:
                job_id = str(job.job_id())
                if job_id in self._jobs:
                    LOG.warning("job %s is already part of experiment %s; skipped",
                                job_id, self.experiment_id)
                    continue
                name = job_tools.job_backend_name(job)
                if name is not None and self._backend_name is None:
                    self._backend_name = name
                    if self._backend is None:
                        try:
                            self._backend = job.backend()
                        except Exception:  # noqa: BLE001
                            self._backend = None
                elif name is not None and name != self._backend_name:
                    LOG.warning("job %s ran on %s, not on this experiment's backend %s",
                                job_id, name, self._backend_name)
                status = job_tools.live_status(job) or JobStatus.INITIALIZING
                record = JobRecord(job_id, job, name or self._backend_name,
                                   job_tools.job_kind(job), time.time(),
                                   JobStatus.RUNNING if status.is_final else status)
                self._jobs[job_id] = record
                added.append(record)
            for record in added:
                submit("job", self._collect, record)
        if timeout is not None and added:
            watcher = threading.Thread(target=self._watch_timeout, args=(added, float(timeout)),
                                       name="qdataset-job-timeout", daemon=True)
            watcher.start()
        self._note_status()
        self._changed()

    def jobs(self) -> list[Any]:
        """The job objects (None for jobs known only from records, e.g. after load)."""
        with self._lock:
            return [record.job for record in self._jobs.values()]

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
            if record.final:
                if rows:
                    LOG.warning("job %s finished after it was recorded as %s; its results "
                                "were not added", record.job_id, record.status.name)
                return False
            try:
                self._add_rows(rows)
            except Exception as exc:  # noqa: BLE001 - e.g. the run was completed meanwhile
                status = JobStatus.ERROR
                message = "its rows could not be stored:\n" + format_exception(exc)
            record.status = status
            record.error_message = message
            record.finished_at = time.time()
            resolve(record.outcome, status is JobStatus.DONE)
        if status is JobStatus.ERROR:
            LOG.warning("job %s of experiment %s failed: %s", record.job_id,
                        self.experiment_id, message)
        self._note_status()
        self._changed()
        return True

    def _watch_timeout(self, records: list[JobRecord], timeout: float) -> None:
        done, not_done = futures.wait([r.outcome for r in records], timeout=timeout)
        late = [r for r in records if not r.final]
        if late:
            self._cancel_records(late, f"not finished within the add_jobs timeout of {timeout} s")

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
            self._finish(record, JobStatus.CANCELLED, reason_text)
            record.acknowledged = True
        return all_cancelled

    def cancel_jobs(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel unfinished jobs (all, or those with the given ids).

        They are recorded as CANCELLED at once; results that still arrive are
        discarded.  Returns False if the backend could not stop some of them
        (running Aer jobs cannot be stopped).
        """
        with self._lock:
            wanted = id_set(ids)
            records = [r for jid, r in self._jobs.items() if wanted is None or jid in wanted]
        return self._cancel_records(records, "cancelled by cancel_jobs()")

    # -- status and errors ------------------------------------------------------------------
    def job_status(self) -> JobStatus:
        """Combined job status: ERROR > CANCELLED > RUNNING > QUEUED > ... > DONE."""
        with self._lock:
            return combine_job_statuses(r.current_status() for r in self._jobs.values())


    def job_errors(self) -> str:
        """Error messages of failed jobs, one ``[Job ID: ...]`` entry per job."""
        with self._lock:
            return "".join(f"\n[Job ID: {r.job_id}]: {r.error_message or 'failed'}"
                           for r in self._jobs.values() if r.current_status() is JobStatus.ERROR)


    def job_records(self) -> list[dict[str, Any]]:
        """qdataset's records of the jobs: id, backend, timestamps, status, error message."""
        with self._lock:
            return [r.to_row() for r in self._jobs.values()]


def _flatten(jobs: Any) -> Iterable[Any]:
    if job_tools.is_job(jobs):
        yield jobs
        return
    if isinstance(jobs, list | tuple):
        for item in jobs:
            yield from _flatten(item)
        return
    yield jobs  # rejected by add_jobs with a helpful message
