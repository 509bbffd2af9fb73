"""Errors of the jobs layer; all are :class:`qdataset.QDatasetError` subclasses."""

from __future__ import annotations

from ..errors import QDatasetError
from ..job_status import UnknownJobStatusError


class JobError(QDatasetError):
    """Base class of the errors raised by :mod:`qdataset.jobs`."""


class JobNotFoundError(JobError, LookupError):
    """No job with the requested id is registered or queued."""


class BackendNotFoundError(JobError, LookupError):
    """The queue has no configuration for the requested backend."""


class InvalidTransitionError(JobError):
    """A queue operation does not fit the job's current state (e.g. finishing a queued job)."""


class NotHolderError(InvalidTransitionError):
    """``finish``/``fail`` of a RUNNING job from someone who does not hold its claim.

    Only the queue object whose ``claim_next`` returned the job (or a caller
    passing that claim's ``token``) may finish or fail it.
    """


class LeaseLostError(NotHolderError):
    """The caller's claim on a job is gone: its lease ran out (or its worker
    looked dead) and the job was requeued for another worker.

    A result sent with a lost claim is dropped, so each job is finished once.
    """


class PayloadError(JobError, ValueError):
    """A job payload, result or backend configuration is malformed."""


class RegistrationError(JobError, ValueError):
    """Jobs and ``notify_status`` given to the watcher do not match, or a status is unknown."""


class UnknownStatusError(RegistrationError, UnknownJobStatusError):
    """A status given to the watcher is not a job status name or alias.

    Also an :class:`~qdataset.job_status.UnknownJobStatusError`, which the
    experiment layer raises for the same mistake.
    """


class JobFailedError(JobError):
    """The job ended in ERROR or CANCELLED, so it has no result."""


class ResultNotReadyError(JobError):
    """The job has not finished yet; wait for it or poll its status."""


class JobConfigError(JobError, ValueError):
    """An argument configuring a watcher, worker or backend is invalid (e.g. a poll interval)."""


class NotifierConfigError(JobConfigError):
    """A notifier is missing configuration (host, recipients, credentials, URL)."""


class SimulationError(JobError, RuntimeError):
    """The simulator ran a payload but its result reports failure."""


class DeliveryError(JobError, OSError):
    """A notifier could not deliver an event (SMTP or HTTP failure, non-2xx answer).

    Also an ``OSError``, like the socket, SMTP and urllib errors it wraps
    (kept as ``__cause__``).  The watcher retries it with backoff.
    """


class FolderQueueError(JobError, OSError):
    """A file of a :class:`~qdataset.jobs.FolderQueue` cannot be read or written.

    Also an ``OSError``, like the error it wraps (kept as ``__cause__``); a file
    that is not valid JSON is reported the same way.
    """
