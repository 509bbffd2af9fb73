"""JobQueue: a transactional job queue stored in the qdataset database.

The operations follow sqooler's storage providers (backend configs, upload a
job, claim the next one, record status and result) under plain names.  A job
moves QUEUED -> RUNNING -> DONE, or to ERROR (kept, with its message), or from
QUEUED to CANCELLED.  ``claim_next`` is atomic: concurrent workers, in any
number of processes, never get the same job.

A claim is a lease (see :mod:`qdataset.jobs._lease`): the worker renews it
while it runs the job, and a job whose lease ran out, or whose worker's pid is
gone on this host, is requeued by the next ``claim_next`` of any worker
(``attempts`` counts the claims; after ``max_attempts`` the job ends as ERROR).
``finish``/``fail`` of a RUNNING job are accepted only with its current claim,
so a worker that lost its lease cannot record a second result.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..store.jobs import Claim, QueueRow, QueueStorage
from . import _lease
from . import _transitions as tr
from .errors import NotHolderError
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

    def __init__(self, store: Any, *, lease_timeout: float | None = None,
                 max_attempts: int = _lease.DEFAULT_MAX_ATTEMPTS) -> None:
        """``lease_timeout``: seconds a claim stays valid without renewal (default: the
        store's ``lease_timeout``, else 10 s); ``max_attempts``: claims of one job
        before losing it once more ends it as ERROR."""
        self.max_attempts = _lease.check_max_attempts(max_attempts)
        if isinstance(store, (str, os.PathLike)):
            from ..store import connect

            store = connect(store)
            self._owned = True
        else:
            self._owned = False
        self.store = store
        self.lease_timeout = _lease.lease_timeout_of(lease_timeout, store)
        self._sql = QueueStorage(store)
        self._claims: dict[str, str] = {}  # job id -> token of the claims made here
        self._claims_lock = threading.Lock()

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

        Jobs of ``backend`` whose claim was lost are requeued first (in the same
        transaction).  The claim is a lease of ``lease_timeout`` seconds: renew it
        with :meth:`renew` while the job runs (:class:`~qdataset.jobs.Worker` does).

        >>> claim = queue.claim_next("aer")
        >>> if claim: queue.finish(claim.job_id, run(claim.payload))
        """
        here = _lease.this_host()
        claim = Claim(worker, here, os.getpid(), _lease.new_token())
        row = self._sql.claim_next(check_backend_name(backend), claim, time.time(),
                                   lease_timeout=self.lease_timeout,
                                   max_attempts=self.max_attempts, lost=self._lost_check(here))
        if row is None:
            return None
        with self._claims_lock:
            self._claims[row.job_id] = claim.token
        return ClaimedJob(row.job_id, row.backend, json.loads(row.payload), row.username,
                          row.claimed_at or time.time(), claim.token, row.attempts,
                          row.lease_expires_at, self.lease_timeout)

    def renew(self, claim: ClaimedJob) -> float:
        """Extend ``claim``'s lease by ``lease_timeout``; returns the new expiry (unix s).

        :class:`LeaseLostError` if the claim is gone (the job was requeued).
        """
        now = time.time()
        if claim.token is None or not self._sql.renew(claim.job_id, claim.token, now,
                                                      self.lease_timeout):
            row = self._sql.get_job(claim.job_id)
            raise _lease.lease_lost(claim.job_id, row.status if row else "unknown",
                                    row.attempts if row else 0, "renew")
        return now + self.lease_timeout

    def requeue_lost(self, backend: str) -> list[str]:
        """Requeue now the RUNNING jobs of ``backend`` whose claim is lost; their ids.

        ``claim_next`` does the same before every claim; this is for looking
        without claiming.  A job lost ``max_attempts`` times ends as ERROR instead.
        """
        here = _lease.this_host()
        looker = Claim(None, here, os.getpid(), "")
        rows = self._sql.requeue_lost(check_backend_name(backend), looker, time.time(),
                                      lease_timeout=self.lease_timeout,
                                      max_attempts=self.max_attempts,
                                      lost=self._lost_check(here))
        return [row.job_id for row in rows]

    def _lost_check(self, here: str) -> Any:
        timeout = self.lease_timeout
        alive: dict[int, bool] = {}  # one look per pid and claim_next

        def lost(row: QueueRow, now: float) -> str | None:
            expires = row.lease_expires_at
            if expires is None:  # claimed before leases existed: counts from the claim
                expires = (row.claimed_at or 0.0) + timeout
            return _lease.lost_reason(row.holder_host, row.holder_pid, expires, now, here=here,
                                      alive=alive)

        return lost

    def attempts(self, job_id: str) -> int:
        """How many times the job has been claimed so far."""
        row = self._sql.get_job(check_job_id(job_id))
        if row is None:
            raise tr.not_found(job_id)
        return row.attempts

    def finish(self, job_id: str, result: Mapping[str, Any], *, token: str | None = None
               ) -> None:
        """Record the result of a RUNNING job; its state becomes DONE.

        Accepted from the holder of the job's current claim: this queue object
        if its ``claim_next`` returned the job, or any caller passing that
        claim's ``token``.  A lost claim raises :class:`LeaseLostError`.
        """
        check_job_id(job_id)
        self._move(job_id, "finish", token, detail="Finished.",
                   result=tr.result_json(job_id, result))

    def fail(self, job_id: str, message: str, *, token: str | None = None) -> None:
        """Mark a QUEUED or RUNNING job as ERROR with ``message``; the job is kept.

        A RUNNING job is failed only by the holder of its claim (as :meth:`finish`).
        """
        check_job_id(job_id)
        self._move(job_id, "fail", token, detail="Failed.",
                   error_message=tr.check_message(message))

    def cancel(self, job_id: str) -> None:
        """Withdraw a job that no worker has claimed yet; its state becomes CANCELLED."""
        self._move(check_job_id(job_id), "cancel", None, detail="Cancelled before it ran.")

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

    def _move(self, job_id: str, operation: str, token: str | None, **values: Any) -> None:
        allowed, target = tr.TRANSITIONS[operation]
        mine = None
        if operation != "cancel":
            with self._claims_lock:
                mine = self._claims.get(job_id)
            token = token or mine
        refused = self._sql.transition(job_id, allowed, target, now=time.time(), token=token,
                                       **values)
        if refused is None:
            if mine is not None:
                with self._claims_lock:
                    self._claims.pop(job_id, None)
            return
        raise _refusal(job_id, operation, token, refused)


def _refusal(job_id: str, operation: str, token: str | None, row: QueueRow) -> Exception:
    """Why ``operation`` with ``token`` was refused on the job as it is now (``row``)."""
    if not row.status:
        return tr.not_found(job_id)
    if token is not None and row.claim_token != token:
        return _lease.lease_lost(job_id, row.status, row.attempts, operation)
    if token is None and row.status == "RUNNING" and row.claim_token is not None:
        return NotHolderError(
            f"job {job_id!r} is RUNNING under a claim held by worker "
            f"{row.holder_host}:{row.holder_pid}; only the queue object whose claim_next "
            f"returned it may {operation} it (or pass token=claim.token)"
        )
    return tr.transition_error(job_id, operation, row.status)


def _backend_status(name: str, config: dict[str, Any], pending: int,
                    last_check: float | None) -> BackendStatus:
    operational = bool(config.get("operational", True))
    message = config.get("status_msg") or ("active" if operational else "not operational")
    return BackendStatus(name, str(config.get("backend_version", "")), operational, pending,
                         str(message), last_check)
