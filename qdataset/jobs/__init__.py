"""Jobs: status notifications for quantum jobs, and a job queue with an Aer worker.

Two features, in the same database as the runs:

* :class:`JobWatcher` watches registered jobs (one, a list, or nested lists)
  and sends exactly one notification per (job, watched status) entered,
  through callbacks, :class:`EmailNotifier` (SMTP) and :class:`WebhookNotifier`.
* :class:`JobQueue` (in the store) and :class:`FolderQueue` (sqooler's folder
  layout) hold jobs for backends; ``qdataset worker --backend aer`` runs them
  on qiskit-aer, and :class:`QueueBackend` submits circuits like a qiskit
  backend.

>>> from qdataset.jobs import JobWatcher, JobQueue
>>> with JobWatcher(store, notifiers=[print]) as watcher:
...     watcher.register_job(AerSimulator().run(circuit))

Nothing here imports qiskit until a worker or backend needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .errors import (
    BackendNotFoundError,
    DeliveryError,
    FolderQueueError,
    InvalidTransitionError,
    JobConfigError,
    JobError,
    JobFailedError,
    JobNotFoundError,
    LeaseLostError,
    NotHolderError,
    NotifierConfigError,
    PayloadError,
    RegistrationError,
    ResultNotReadyError,
    SimulationError,
    UnknownStatusError,
)
from .records import BackendStatus, ClaimedJob, QueueJobStatus

_LAZY = {
    "JobWatcher": ".watcher",
    "JobEvent": ".notifiers",
    "CallbackNotifier": ".notifiers",
    "EmailNotifier": ".notifiers",
    "WebhookNotifier": ".notifiers",
    "JobQueue": ".queue",
    "FolderQueue": ".folder",
    "Worker": ".worker",
    "encode_circuits": ".worker",
    "run_payload": ".worker",
    "QueueBackend": ".backend",
    "QueueJob": ".backend",
}

if TYPE_CHECKING:
    from .backend import QueueBackend, QueueJob
    from .folder import FolderQueue
    from .notifiers import CallbackNotifier, EmailNotifier, JobEvent, WebhookNotifier
    from .queue import JobQueue
    from .watcher import JobWatcher
    from .worker import Worker, encode_circuits, run_payload


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "BackendNotFoundError",
    "BackendStatus",
    "CallbackNotifier",
    "ClaimedJob",
    "DeliveryError",
    "EmailNotifier",
    "FolderQueue",
    "FolderQueueError",
    "InvalidTransitionError",
    "JobConfigError",
    "JobError",
    "JobEvent",
    "JobFailedError",
    "JobNotFoundError",
    "JobQueue",
    "JobWatcher",
    "LeaseLostError",
    "NotHolderError",
    "NotifierConfigError",
    "PayloadError",
    "QueueBackend",
    "QueueJob",
    "QueueJobStatus",
    "RegistrationError",
    "ResultNotReadyError",
    "SimulationError",
    "UnknownStatusError",
    "Worker",
    "WebhookNotifier",
    "encode_circuits",
    "run_payload",
]
