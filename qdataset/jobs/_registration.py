"""Arguments of the JobWatcher: job ids, nested lists, ``notify_status`` and records.

Pure functions without state or I/O, kept apart from the watcher's threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store.jobs import WatchRow
from .errors import RegistrationError
from .records import status_name

#: A job seen DONE has certainly been RUNNING, even if no poll caught it running.
_IMPLIED_BEFORE = {"DONE": ("RUNNING",)}


def job_id_of(job: Any) -> str:
    """The id of a qiskit-style job (``job.job_id()``), or a job id string itself."""
    if isinstance(job, str):
        return job
    ident = getattr(job, "job_id", None)
    if callable(ident):
        ident = ident()
    if not isinstance(ident, str) or not ident:
        raise RegistrationError(
            f"{job!r} is not a job: register objects with a job_id() method "
            "(qiskit jobs) or lists of them"
        )
    return ident


def statuses(value: Any, where: str) -> list[str]:
    """Canonical status names of one job's ``notify_status`` (None: DONE only)."""
    if value is None:
        return ["DONE"]
    items = [value] if isinstance(value, str) or hasattr(value, "name") else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise RegistrationError(
            f"notify_status{where} must be a non-empty list of statuses such as "
            f"['DONE', 'ERROR'], not {value!r}"
        )
    names: list[str] = []
    for item in items:
        name = status_name(item)
        if name not in names:
            names.append(name)
    return names


def pair(jobs: Any, notify: Any, where: str, out: list[tuple[Any, list[str]]]) -> Any:
    """Walk ``jobs`` and ``notify`` together; collect (job, statuses); return ids nested."""
    if isinstance(jobs, (list, tuple)):
        if notify is not None and (not isinstance(notify, (list, tuple))
                                   or len(notify) != len(jobs)):
            raise RegistrationError(
                f"notify_status{where} must have the same nesting as the jobs: a list of "
                f"{len(jobs)} entries, one per job or sub-list, got {notify!r}"
            )
        return [pair(job, None if notify is None else notify[i], f"{where}[{i}]", out)
                for i, job in enumerate(jobs)]
    out.append((jobs, statuses(notify, where)))
    return job_id_of(jobs)


def flatten(items: Any) -> list[Any]:
    """The leaves of nested lists, in order."""
    if isinstance(items, (list, tuple)):
        return [leaf for item in items for leaf in flatten(item)]
    return [items]


def nested_map(ids: Any, function: Callable[[str], Any]) -> Any:
    """``function`` applied to every id, keeping the nesting."""
    if isinstance(ids, (list, tuple)):
        return [nested_map(item, function) for item in ids]
    return function(ids)


def entered_statuses(previous: str | None, notify: list[str], status: str) -> list[str]:
    """The watched statuses a job entered when it was seen in ``status`` after ``previous``."""
    candidates = [s for s in _IMPLIED_BEFORE.get(status, ()) if s != previous] + [status]
    return [s for s in candidates if s in notify]


def info_dict(row: WatchRow) -> dict[str, Any]:
    """A registered job as :meth:`JobWatcher.job_info` shows it."""
    return {"job_id": row.job_id, "notify_status": row.notify_status,
            "status": row.last_status, "notified": row.notified, "label": row.label,
            "backend": row.backend, "registered_at": row.registered_at,
            "updated_at": row.updated_at}
