"""QueueBackend: the job queue as a qiskit-style backend.

``QueueBackend(store, "aer").run(circuits, shots=...)`` submits the circuits
to the queue and returns a :class:`QueueJob`; a worker (``qdataset worker
--backend aer``) runs them.  The job's ``status()`` is a qiskit ``JobStatus``
and its ``result()`` a real ``qiskit.result.Result``, so the job can go
wherever an Aer job goes (``ExperimentData.add_jobs`` included).
"""

from __future__ import annotations

import time
from typing import Any

from .errors import BackendNotFoundError, JobConfigError, ResultNotReadyError
from .records import FINAL_STATUSES


def _as_queue(source: Any) -> Any:
    if hasattr(source, "claim_next") and hasattr(source, "submit"):
        return source  # a JobQueue or FolderQueue
    from .queue import JobQueue

    return JobQueue(source)


class QueueBackend:
    """Submit circuits to the job queue like to a qiskit backend.

    >>> backend = QueueBackend(store, "aer")               # or a JobQueue / FolderQueue
    >>> job = backend.run([bell], shots=1000, seed_simulator=7)
    >>> job.result().get_counts()                          # once a worker ran it
    {'00': 503, '11': 497}

    Without a configuration for the backend in the queue, a minimal one is
    uploaded (a worker replaces it with its own on first start).
    """

    def __init__(self, store_or_queue: Any, name: str = "aer", *, format: str = "qpy",
                 poll_interval: float = 0.05) -> None:
        if format not in ("qpy", "qasm3"):
            raise JobConfigError(f"format {format!r} is unknown; use 'qpy' or 'qasm3'")
        self.queue = _as_queue(store_or_queue)
        self._name = name
        self.format = format
        self.poll_interval = poll_interval
        try:
            self.queue.get_config(name)
        except BackendNotFoundError:
            self.queue.upload_config(name, {"simulator": True, "operational": True,
                                            "description": "qiskit-aer via the job queue"})

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<QueueBackend {self._name!r} on {self.queue!r}>"

    def status(self) -> Any:
        """The queue's view of the backend (operational, pending_jobs)."""
        return self.queue.backend_status(self._name)

    def run(self, circuits: Any, shots: int = 1024, *, username: str | None = None,
            seed_simulator: int | None = None, memory: bool | None = None) -> QueueJob:
        """Queue ``circuits`` (one QuantumCircuit or a list) and return the job."""
        from .worker import check_payload, encode_circuits

        payload: dict[str, Any] = {"format": self.format,
                                   "circuits": encode_circuits(circuits, self.format),
                                   "shots": shots}
        if seed_simulator is not None:
            payload["seed_simulator"] = seed_simulator
        if memory is not None:
            payload["memory"] = memory
        check_payload(payload)
        job_id = self.queue.submit(self._name, payload, username=username)
        return QueueJob(self, job_id)


class QueueJob:
    """A job in the queue, with the methods of a qiskit job.

    >>> job.status()            # JobStatus.QUEUED / RUNNING / DONE / ERROR / CANCELLED
    >>> job.result(timeout=60)  # qiskit.result.Result; JobFailedError if the job failed
    """

    def __init__(self, backend: QueueBackend, job_id: str) -> None:
        self._backend = backend
        self._job_id = job_id
        self._result: Any = None

    def __repr__(self) -> str:
        return f"<QueueJob {self._job_id} on {self._backend.name!r}>"

    def job_id(self) -> str:
        return self._job_id

    def backend(self) -> QueueBackend:
        return self._backend

    def _state(self) -> Any:
        return self._backend.queue.status(self._job_id)

    def status(self) -> Any:
        """The job's state as a qiskit ``JobStatus``."""
        from qiskit.providers import JobStatus

        return JobStatus[self._state().status]

    def error_message(self) -> str | None:
        return self._state().error_message

    def done(self) -> bool:
        return self._state().status == "DONE"

    def running(self) -> bool:
        return self._state().status == "RUNNING"

    def cancelled(self) -> bool:
        return self._state().status == "CANCELLED"

    def in_final_state(self) -> bool:
        return self._state().status in FINAL_STATUSES

    def cancel(self) -> bool:
        """Withdraw the job if no worker has claimed it yet; True if it was cancelled."""
        from .errors import InvalidTransitionError

        try:
            self._backend.queue.cancel(self._job_id)
        except InvalidTransitionError:
            return False
        return True

    def wait_for_final_state(self, timeout: float | None = None) -> None:
        """Block until the job is DONE, ERROR or CANCELLED (ResultNotReadyError on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.in_final_state():
            if deadline is not None and time.monotonic() > deadline:
                raise ResultNotReadyError(
                    f"job {self._job_id} did not finish within {timeout} s; is a worker "
                    f"running? (qdataset worker --backend {self._backend.name})"
                )
            time.sleep(self._backend.poll_interval)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its ``qiskit.result.Result``."""
        if self._result is None:
            self.wait_for_final_state(timeout)
            data = self._backend.queue.result(self._job_id)  # JobFailedError if it failed
            from qiskit.result import Result

            data = {**data, "job_id": self._job_id}
            self._result = Result.from_dict(data)
        return self._result
