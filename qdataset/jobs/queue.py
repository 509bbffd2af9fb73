"""JobQueue: a transactional job queue stored in the qdataset database.

The operations follow sqooler's storage providers (backend configs, upload a
job, claim the next one, record status and result) under plain names.  A job
moves QUEUED -> RUNNING -> DONE, or to ERROR (kept, with its message), or from
QUEUED to CANCELLED.  ``claim_next`` is atomic: concurrent workers, in any
number of processes, never get the same job.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ..store.jobs import QueueStorage
from . import _transitions as tr
from .records import (
    BackendStatus,
    ClaimedJob,
    QueueJobStatus,
    check_backend_name,
    check_job_id,
    new_job_id,
)


class JobQueue:
    """The job queue of one qdataset store.

    >>> queue = JobQueue(qdataset.connect("sqlite:///lab.db"))
    >>> queue.upload_config("aer", {"backend_version": "0.18", "max_shots": 100_000})
    >>> job_id = queue.submit("aer", {"format": "qasm3", "circuits": [qasm], "shots": 100})
    >>> claim = queue.claim_next("aer")          # in a worker: state RUNNING
    >>> queue.finish(claim.job_id, {"counts": {"00": 51, "11": 49}})
    >>> queue.status(job_id).status, queue.result(job_id)["counts"]
    ('DONE', {'00': 51, '11': 49})
    """

    def __init__(self, store: Any) -> None:
        if isinstance(store, (str, os.PathLike)):
            from ..store import connect

            store = connect(store)
            self._owned = True
        else:
            self._owned = False
        self.store = store
        self._sql = QueueStorage(store)

    def __repr__(self) -> str:
        return f"<JobQueue {self.store!r}>"

    def close(self) -> None:
        """Close the store if this queue opened it from a URL."""
        if self._owned:
            self.store.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- backends ------------------------------------------------------------------
    def upload_config(self, backend: str, config: Mapping[str, Any]) -> None:
        """Create or replace the configuration of ``backend`` (a JSON-able dict).

        >>> queue.upload_config("aer", {"operational": True, "max_shots": 10_000})
        """
        self._sql.put_config(backend, tr.config_json(backend, config), time.time())

    def get_config(self, backend: str) -> dict[str, Any]:
        """The configuration of ``backend``; BackendNotFoundError if it has none."""
        text = self._sql.get_config(check_backend_name(backend))
        if text is None:
            raise tr.backend_not_found(backend)
        return json.loads(text)

    def backends(self) -> list[str]:
        """Names of the backends with a configuration, sorted."""
        return self._sql.backends()

    def backend_status(self, backend: str) -> BackendStatus:
        """Whether ``backend`` is operational and how many jobs wait for it.

        >>> queue.backend_status("aer").pending_jobs
        3
        """
        state = self._sql.backend_state(check_backend_name(backend))
        if state is None:
            raise tr.backend_not_found(backend)
        text, last_check, pending = state
        return _backend_status(backend, json.loads(text), pending, last_check)

    # -- jobs ----------------------------------------------------------------------
    def submit(self, backend: str, payload: Mapping[str, Any], username: str | None = None
               ) -> str:
        """Queue ``payload`` (a JSON-able dict) for ``backend``; returns the job id.

        >>> job_id = queue.submit("aer", {"format": "qasm3", "circuits": [qasm], "shots": 100})
        >>> queue.status(job_id).status
        'QUEUED'
        """
        check_backend_name(backend)
        text = tr.payload_json(payload)
        job_id = new_job_id()
        if not self._sql.insert_job(job_id, backend, username, text, time.time()):
            raise tr.backend_not_found(backend)
        return job_id

    def status(self, job_id: str) -> QueueJobStatus:
        """The job's state: ``.status``, ``.detail``, ``.error_message``."""
        row = self._sql.get_job(check_job_id(job_id))
        if row is None:
            raise tr.not_found(job_id)
        return QueueJobStatus(row.job_id, row.status, row.detail, row.error_message, row.backend)

    def claim_next(self, backend: str, worker: str | None = None) -> ClaimedJob | None:
        """Take the oldest QUEUED job of ``backend`` (now RUNNING), or None if there is none.

        >>> claim = queue.claim_next("aer")
        >>> if claim: run(claim.payload)
        """
        row = self._sql.claim_next(check_backend_name(backend), worker, time.time())
        if row is None:
            return None
        return ClaimedJob(row.job_id, row.backend, json.loads(row.payload), row.username,
                          row.claimed_at or time.time())

    def finish(self, job_id: str, result: Mapping[str, Any]) -> None:
        """Record the result of a RUNNING job; its state becomes DONE."""
        check_job_id(job_id)
        self._move(job_id, "finish", detail="Finished.", result=tr.result_json(job_id, result))

    def fail(self, job_id: str, message: str) -> None:
        """Mark a QUEUED or RUNNING job as ERROR with ``message``; the job is kept."""
        check_job_id(job_id)
        self._move(job_id, "fail", detail="Failed.", error_message=tr.check_message(message))

    def cancel(self, job_id: str) -> None:
        """Withdraw a job that no worker has claimed yet; its state becomes CANCELLED."""
        self._move(check_job_id(job_id), "cancel", detail="Cancelled before it ran.")

    def result(self, job_id: str) -> dict[str, Any]:
        """The result of a DONE job (JobFailedError / ResultNotReadyError otherwise)."""
        row = self._sql.get_job(check_job_id(job_id))
        if row is None:
            raise tr.not_found(job_id)
        return tr.result_or_raise(job_id, row.status, row.error_message, row.result)

    def payload(self, job_id: str) -> dict[str, Any]:
        """The payload a job was submitted with."""
        row = self._sql.get_job(check_job_id(job_id))
        if row is None:
            raise tr.not_found(job_id)
        return json.loads(row.payload)

    def jobs(self, backend: str | None = None, status: str | None = None) -> list[str]:
        """Job ids in submission order, optionally of one backend and/or status."""
        return self._sql.job_ids(backend, status)

    def _move(self, job_id: str, operation: str, **values: Any) -> None:
        allowed, target = tr.TRANSITIONS[operation]
        current = self._sql.transition(job_id, allowed, target, now=time.time(), **values)
        if current is not None:
            raise tr.transition_error(job_id, operation, current)


def _backend_status(name: str, config: dict[str, Any], pending: int,
                    last_check: float | None) -> BackendStatus:
    operational = bool(config.get("operational", True))
    message = config.get("status_msg") or ("active" if operational else "not operational")
    return BackendStatus(name, str(config.get("backend_version", "")), operational, pending,
                         str(message), last_check)
