"""The job queue's state machine and payload checks, shared by both providers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import (
    InvalidTransitionError,
    JobFailedError,
    JobNotFoundError,
    PayloadError,
    ResultNotReadyError,
)
from .records import check_backend_name, to_json

#: operation -> (states it may start from, state it ends in)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "claim": (("QUEUED",), "RUNNING"),
    "finish": (("RUNNING",), "DONE"),
    "fail": (("QUEUED", "RUNNING"), "ERROR"),
    "cancel": (("QUEUED",), "CANCELLED"),
}

_HOW = {
    "finish": "only a RUNNING job (one returned by claim_next) can be finished",
    "fail": "only a QUEUED or RUNNING job can be failed",
    "cancel": "only a QUEUED job can be cancelled; a RUNNING one is left to its worker",
}


def transition_error(job_id: str, operation: str, current: str) -> Exception:
    """The error for ``operation`` on a job whose state is ``current`` ("" if unknown)."""
    if not current:
        return not_found(job_id)
    verb = {"finish": "finished", "fail": "failed", "cancel": "cancelled"}[operation]
    return InvalidTransitionError(
        f"job {job_id!r} is {current}, so it cannot be {verb}; {_HOW[operation]}"
    )


def not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(
        f"no job {job_id!r} in this queue; use the id that submit() returned "
        "(queue.jobs() lists them)"
    )


def backend_not_found(name: str) -> Exception:
    from .errors import BackendNotFoundError

    return BackendNotFoundError(
        f"backend {name!r} has no configuration in this queue; upload one first with "
        f"queue.upload_config({name!r}, {{...}})"
    )


def config_json(name: str, config: Any) -> str:
    """Check a backend configuration and return it as JSON (with ``display_name``)."""
    check_backend_name(name)
    if not isinstance(config, Mapping):
        raise PayloadError(
            f"the configuration of backend {name!r} must be a dict, "
            f"not {type(config).__name__}"
        )
    config = dict(config)
    shown = config.setdefault("display_name", name)
    if shown != name:
        raise PayloadError(
            f"the configuration's display_name {shown!r} differs from the backend name "
            f"{name!r}; leave display_name out or make them equal"
        )
    return to_json(config, f"the configuration of backend {name!r}")


def payload_json(payload: Any) -> str:
    return to_json(payload, "a job payload")


def result_json(job_id: str, result: Any) -> str:
    if not isinstance(result, Mapping):
        raise PayloadError(
            f"the result of job {job_id!r} must be a dict (e.g. Result.to_dict()), "
            f"not {type(result).__name__}"
        )
    return to_json(result, "a job result")


def check_message(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise PayloadError("fail() needs a non-empty error message saying what went wrong")
    return message


def result_or_raise(job_id: str, status: str, error_message: str | None,
                    result_text: str | None) -> dict[str, Any]:
    """The stored result of a DONE job, or the error explaining why there is none."""
    if status == "DONE" and result_text is not None:
        return json.loads(result_text)
    if status in ("ERROR", "CANCELLED"):
        raise JobFailedError(
            f"job {job_id!r} ended in {status} and has no result"
            + (f": {error_message}" if error_message else "")
        )
    raise ResultNotReadyError(
        f"job {job_id!r} is {status or 'unknown'}; its result exists once it is DONE "
        "(poll queue.status(job_id))"
    )
