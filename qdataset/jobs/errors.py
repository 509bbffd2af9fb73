"""Errors of the jobs layer; all are :class:`qdataset.QDatasetError` subclasses."""

from __future__ import annotations

from ..errors import QDatasetError


class JobError(QDatasetError):
    """Base class of the errors raised by :mod:`qdataset.jobs`."""


class JobNotFoundError(JobError, LookupError):
    """No job with the requested id is registered or queued."""


class BackendNotFoundError(JobError, LookupError):
    """The queue has no configuration for the requested backend."""


class InvalidTransitionError(JobError):
    """A queue operation does not fit the job's current state (e.g. finishing a queued job)."""


class PayloadError(JobError, ValueError):
    """A job payload, result or backend configuration is malformed."""


class RegistrationError(JobError, ValueError):
    """Jobs and ``notify_status`` given to the watcher do not match, or a status is unknown."""


class JobFailedError(JobError):
    """The job ended in ERROR or CANCELLED, so it has no result."""


class ResultNotReadyError(JobError):
    """The job has not finished yet; wait for it or poll its status."""


class NotifierConfigError(JobError, ValueError):
    """A notifier is missing configuration (host, recipients, credentials, URL)."""
