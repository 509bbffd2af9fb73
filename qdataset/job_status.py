"""The job vocabulary shared by the experiment and jobs layers.

Both :mod:`qdataset.experiment` and :mod:`qdataset.jobs` read the status of
qiskit-style jobs and the name of their backend, and neither may import the
other, so the names live here (this module imports only the standard library
and :mod:`qdataset.errors`).

Status names are those of ``qiskit.providers.JobStatus``: INITIALIZING,
QUEUED, VALIDATING, RUNNING, CANCELLED, DONE and ERROR.  A status may be
given as one of our :class:`JobStatus` members, any enum with such a
``.name`` (qiskit's ``JobStatus`` included) or a string, in any case and
with surrounding blanks.  These aliases, used by other providers and by
earlier versions of either layer, are accepted as well:

============  ==========
alias         status
============  ==========
CANCELED      CANCELLED
COMPLETED     DONE
SUCCEEDED     DONE
FINISHED      DONE
FAILED        ERROR
============  ==========

>>> job_status_name("canceled")
'CANCELLED'
>>> JobStatus.coerce("completed")
<JobStatus.DONE: 'job has successfully run'>
"""

from __future__ import annotations

import enum
from typing import Any

from .errors import QDatasetError


class UnknownJobStatusError(QDatasetError, ValueError):
    """A value is not a job status name, an alias of one, or a status enum."""


class JobStatus(enum.Enum):
    """Status of a job, mirroring ``qiskit.providers.JobStatus`` without importing qiskit."""

    INITIALIZING = "job is being initialized"
    QUEUED = "job is queued"
    VALIDATING = "job is being validated"
    RUNNING = "job is actively running"
    CANCELLED = "job has been cancelled"
    DONE = "job has successfully run"
    ERROR = "job incurred an error"

    @property
    def is_final(self) -> bool:
        """True for DONE, ERROR and CANCELLED: the job will not change any more."""
        return self.name in FINAL_STATUSES

    @classmethod
    def coerce(cls, value: Any) -> JobStatus:
        """Our JobStatus for a qiskit JobStatus, a status name, an alias or one of ours.

        >>> JobStatus.coerce("Failed")
        <JobStatus.ERROR: 'job incurred an error'>
        """
        if isinstance(value, cls):
            return value
        return cls[job_status_name(value)]


#: Every status name, in qiskit's order.
STATUSES: tuple[str, ...] = tuple(JobStatus.__members__)

#: Statuses a job never leaves.
FINAL_STATUSES: frozenset[str] = frozenset({"DONE", "ERROR", "CANCELLED"})

#: Other spellings accepted for a status (upper case), see the module docstring.
STATUS_ALIASES: dict[str, str] = {
    "CANCELED": "CANCELLED",
    "COMPLETED": "DONE",
    "SUCCEEDED": "DONE",
    "FINISHED": "DONE",
    "FAILED": "ERROR",
}


def job_status_name(status: Any) -> str:
    """The canonical name of ``status``: a status enum (ours or qiskit's), a name or an alias.

    Raises :class:`UnknownJobStatusError` (a ``ValueError``) for anything else.

    >>> job_status_name(" done ")
    'DONE'
    """
    name = getattr(status, "name", status)
    if isinstance(name, str):
        key = name.strip().upper()
        key = STATUS_ALIASES.get(key, key)
        if key in JobStatus.__members__:
            return key
    raise UnknownJobStatusError(
        f"{status!r} is not a job status; use one of {', '.join(STATUSES)} "
        f"(or an alias: {', '.join(sorted(STATUS_ALIASES))})"
    )


def backend_name(backend: Any) -> str | None:
    """The name of a backend: ``backend.name`` (BackendV2, a str) or ``backend.name()`` (V1).

    A backend without a name is named by ``str(backend)``; None gives None.
    """
    if backend is None:
        return None
    name = getattr(backend, "name", None)
    if callable(name):
        name = name()
    return str(name) if name is not None else str(backend)


def job_backend_name(job: Any) -> str | None:
    """The name of the job's backend, or None when the job does not say (primitive jobs).

    Never raises: the name is informative only, and some job classes raise
    from ``backend()``.
    """
    backend = getattr(job, "backend", None)
    if not callable(backend):
        return None
    try:
        return backend_name(backend())
    except Exception:  # noqa: BLE001 - see the docstring
        return None


__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "STATUS_ALIASES",
    "JobStatus",
    "UnknownJobStatusError",
    "backend_name",
    "job_backend_name",
    "job_status_name",
]
