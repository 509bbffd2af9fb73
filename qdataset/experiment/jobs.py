"""From jobs and their results to the experiment's data dicts.

Works by duck typing so that qiskit is never imported here: a *job* is any
object with ``job_id()``, ``status()`` and ``result()``; a *result* is either
a backend ``Result`` (``.results`` and ``get_counts``), a primitive result
(an iterable of pub results with ``.data``), or something we cannot store.

>>> rows = rows_from_result(job.result(), job.job_id())
>>> rows[0]["counts"]
{'00': 512, '11': 488}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# The status vocabulary and backend names are shared with qdataset.jobs;
# backend_name and job_backend_name are re-exported for the experiment layer.
from ..job_status import JobStatus, backend_name, job_backend_name
from .errors import UnsupportedResultError

__all__ = [
    "ResultFailedError",
    "backend_name",
    "error_message",
    "is_job",
    "job_backend_name",
    "job_kind",
    "live_status",
    "rows_from_result",
]


class ResultFailedError(Exception):
    """A job finished but its result reports failure (``result.success`` is False).

    ``rows`` holds the data of the circuits that did succeed.
    """

    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows


def is_job(obj: Any) -> bool:
    """True for job-like objects: ``job_id()``, ``status()`` and ``result()``."""
    return all(callable(getattr(obj, name, None)) for name in ("job_id", "status", "result"))


def live_status(job: Any) -> JobStatus | None:
    """The job's own status as our :class:`JobStatus`, or None if it cannot be read."""
    try:
        return JobStatus.coerce(job.status())
    except Exception:  # noqa: BLE001 - a flaky status() must not break status reporting
        return None


def job_kind(job: Any) -> str:
    """"sampler", "estimator", "primitive" or "backend" (JobV1 and other jobs)."""
    cls = type(job).__name__.lower()
    if "primitive" in cls:
        fn = getattr(job, "_function", None)
        owner = type(getattr(fn, "__self__", None)).__name__.lower()
        if "sampler" in owner:
            return "sampler"
        if "estimator" in owner:
            return "estimator"
        return "primitive"
    return "backend"


def error_message(job: Any) -> str | None:
    """The job's own error message, if it offers one."""
    getter = getattr(job, "error_message", None)
    if callable(getter):
        try:
            message = getter()
        except Exception:  # noqa: BLE001
            return None
        return None if message is None else str(message)
    return None


# -- results -> rows -------------------------------------------------------------------------
def rows_from_result(result: Any, job_id: str | None = None) -> list[dict[str, Any]]:
    """The data dicts of a job result: backend ``Result`` or primitive result.

    Raises :class:`ResultFailedError` when the result reports failure and
    :class:`UnsupportedResultError` for objects that are not results.
    """
    if hasattr(result, "results") and hasattr(result, "get_counts"):
        return _rows_from_backend_result(result, job_id)
    if _is_primitive_result(result):
        return _rows_from_primitive_result(result, job_id)
    raise UnsupportedResultError(
        f"cannot read results of type {type(result).__name__}; add qiskit Result or "
        "PrimitiveResult objects, or dicts with add_data()"
    )


def _rows_from_backend_result(result: Any, job_id: str | None) -> list[dict[str, Any]]:
    job_id = job_id if job_id is not None else getattr(result, "job_id", None)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for i, exp in enumerate(result.results):
        if not getattr(exp, "success", True):
            failures.append(f"circuit {i}: {getattr(exp, 'status', 'failed')}")
            continue
        data = dict(result.data(i))
        row: dict[str, Any] = {"job_id": job_id, "circuit_index": i, "kind": "counts"}
        if "counts" in data:
            row["counts"] = dict(result.get_counts(i))
        data.pop("counts", None)
        if "memory" in data:
            row["memory"] = result.get_memory(i)
            if isinstance(row["memory"], np.ndarray):
                row["memory"] = row["memory"].tolist()
        data.pop("memory", None)
        header = getattr(exp, "header", None)
        metadata = header.get("metadata") if isinstance(header, dict) else getattr(
            header, "metadata", None)
        if metadata is not None:
            row["metadata"] = metadata
        if getattr(exp, "shots", None) is not None:
            row["shots"] = int(_first(exp.shots))
        if getattr(exp, "meas_level", None) is not None:
            row["meas_level"] = int(exp.meas_level)
        if getattr(exp, "meas_return", None) is not None:
            row["meas_return"] = str(getattr(exp.meas_return, "value", exp.meas_return))
        row.update(data)  # anything else saved by the circuit (statevector, ...)
        rows.append(row)
    if not getattr(result, "success", True) or failures:
        message = str(getattr(result, "status", "") or "").strip()
        detail = "; ".join(failures)
        if detail and detail not in message:
            message = f"{message} ({detail})" if message else detail
        raise ResultFailedError(message or "the job's result reports failure", rows)
    return rows


def _first(shots: Any) -> Any:
    """Old results give shots as a [start, stop] pair; take the count."""
    if isinstance(shots, list | tuple) and len(shots) == 2:
        return shots[1] - shots[0]
    return shots


def _is_primitive_result(result: Any) -> bool:
    if not isinstance(result, Iterable) or isinstance(result, str | bytes | dict):
        return False
    try:
        first = next(iter(result), None)
    except TypeError:
        return False
    return first is None or hasattr(first, "data")


def _rows_from_primitive_result(result: Any, job_id: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, pub in enumerate(result):
        data = pub.data
        metadata = dict(getattr(pub, "metadata", {}) or {})
        circuit_metadata = metadata.get("circuit_metadata")
        base: dict[str, Any] = {"job_id": job_id, "circuit_index": index}
        if circuit_metadata:
            base["metadata"] = circuit_metadata
        fields = dict(data.items()) if hasattr(data, "items") else dict(vars(data))
        if "evs" in fields:
            rows.extend(_estimator_rows(base, fields, metadata))
            continue
        other: dict[str, Any] = {}
        for name, value in fields.items():
            if hasattr(value, "get_counts") and hasattr(value, "num_shots"):
                rows.extend(_sampler_rows(base, name, value))
            else:
                other[name] = value
        if other:
            rows.append({**base, "kind": "data", **other})
    return rows


def _sampler_rows(base: dict[str, Any], register: str, bits: Any) -> list[dict[str, Any]]:
    shape = tuple(bits.shape)
    rows = []
    for loc in np.ndindex(*shape) if shape else [()]:
        counts = bits.get_counts(loc=loc) if shape else bits.get_counts()
        rows.append({**base, "kind": "sampler", "register": register, "loc": list(loc),
                     "counts": dict(counts), "shots": int(bits.num_shots), "meas_level": 2})
    return rows


def _estimator_rows(base: dict[str, Any], fields: dict[str, Any],
                    metadata: dict[str, Any]) -> list[dict[str, Any]]:
    evs = np.asarray(fields.pop("evs"))
    stds = np.asarray(fields.pop("stds", np.full(evs.shape, np.nan)))
    stds = np.broadcast_to(stds, evs.shape)
    per_loc = {k: np.asarray(v) for k, v in fields.items()
               if np.shape(v) == evs.shape and np.ndim(v) > 0}
    extra: dict[str, Any] = {}
    if "target_precision" in metadata:
        extra["target_precision"] = metadata["target_precision"]
    if "shots" in metadata:
        base = {**base, "shots": int(metadata["shots"])}
    rows = []
    for loc in np.ndindex(*evs.shape) if evs.shape else [()]:
        row = {**base, "kind": "estimator", "loc": list(loc), "evs": float(evs[loc]),
               "stds": float(stds[loc]), **extra}
        for key, arr in per_loc.items():
            row[key] = arr[loc].item()
        if not evs.shape:
            row.update({k: v for k, v in fields.items() if np.ndim(v) == 0})
        rows.append(row)
    return rows
