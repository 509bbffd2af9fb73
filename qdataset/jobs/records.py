"""Plain records and helpers shared by the job queue providers and the watcher."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..job_status import FINAL_STATUSES, STATUSES, UnknownJobStatusError, job_status_name
from .errors import PayloadError, UnknownStatusError

# FINAL_STATUSES and STATUSES are re-exported: the queue and watcher import them from here.
__all__ = ["FINAL_STATUSES", "STATUSES", "BackendStatus", "ClaimedJob", "QueueJobStatus",
           "check_backend_name", "check_job_id", "new_job_id", "status_name", "to_json"]

_BACKEND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def status_name(status: Any) -> str:
    """The canonical name of ``status``: a ``JobStatus``, its name, or an alias.

    The names and aliases are those of :mod:`qdataset.job_status`, shared
    with the experiment layer; an unknown status is an
    :class:`UnknownStatusError` (a ``RegistrationError``).

    >>> status_name("canceled")
    'CANCELLED'
    """
    try:
        return job_status_name(status)
    except UnknownJobStatusError as exc:
        raise UnknownStatusError(str(exc)) from None


@dataclass(frozen=True)
class QueueJobStatus:
    """The state of a queued job, as :meth:`JobQueue.status` reports it."""

    job_id: str
    status: str
    detail: str = ""
    error_message: str | None = None
    backend: str | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """A job handed to one worker by ``claim_next``; its state is now RUNNING.

    The claim is a lease: ``token`` identifies it (``finish``/``fail`` check
    it), it runs out at ``lease_expires_at`` unless renewed
    (``queue.renew(claim)``, which :class:`~qdataset.jobs.Worker` does while
    it runs the job), and ``attempts`` counts the claims of this job so far.
    """

    job_id: str
    backend: str
    payload: dict[str, Any]
    username: str | None = None
    claimed_at: float = field(default_factory=time.time)
    token: str | None = None
    attempts: int = 1
    lease_expires_at: float | None = None
    lease_timeout: float | None = None


@dataclass(frozen=True)
class BackendStatus:
    """What ``backend_status`` reports: qiskit's BackendStatus fields plus the queue."""

    backend_name: str
    backend_version: str
    operational: bool
    pending_jobs: int
    status_msg: str
    last_queue_check: float | None = None


def check_backend_name(name: Any) -> str:
    """A backend name usable as a database key and as a folder name."""
    if not isinstance(name, str) or not _BACKEND_NAME.match(name):
        raise PayloadError(
            f"backend name {name!r} is invalid; use letters, digits, '_', '.' and '-' "
            "(at most 128 characters, not starting with a punctuation mark)"
        )
    return name


def check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not job_id or "/" in job_id or "\\" in job_id \
            or job_id.startswith("."):
        raise PayloadError(f"{job_id!r} is not a job id; pass the id that submit() returned")
    return job_id


def to_json(value: Any, what: str) -> str:
    """``value`` as JSON text; numpy scalars and arrays become numbers and lists."""
    if what != "a job result" and not isinstance(value, Mapping):
        raise PayloadError(
            f"{what} must be a dict (JSON object), not {type(value).__name__}"
        )
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"{what} is not JSON-serialisable ({exc}); use dicts, lists, strings, "
            "finite numbers, booleans and None (encode binary data as base64)"
        ) from exc


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return tolist()
    if isinstance(value, complex):
        return [value.real, value.imag]
    isoformat = getattr(value, "isoformat", None)  # datetime, date
    if callable(isoformat):
        return isoformat()
    if hasattr(value, "value") and hasattr(value, "name"):  # Enum
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    # json.dumps wants a TypeError from default(); to_json turns it into a PayloadError.
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")  # internal


_id_lock = threading.Lock()
_last_us = 0


def new_job_id() -> str:
    """A 24-hex-digit id (like sqooler's) that sorts by submission time."""
    global _last_us
    with _id_lock:
        now = time.time_ns() // 1000
        _last_us = max(now, _last_us + 1)
        stamp = _last_us
    return f"{stamp:013x}{os.urandom(6).hex()[:11]}"
