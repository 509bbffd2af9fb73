"""Worker threads and futures shared by the job and analysis runners.

Jobs are waited on (they block in ``job.result()``) and analysis callbacks run
on two shared thread pools that exist only while they have work.

>>> future = submit("analysis", fn, exp)
>>> resolve(record.outcome, True)     # False if someone resolved it first
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

_pool_lock = threading.Lock()
_pools: dict[str, futures.ThreadPoolExecutor] = {}
_pending: dict[str, int] = {"job": 0, "analysis": 0}
#: Threads waiting on jobs (they block in job.result()) and running analysis callbacks.
_POOL_SIZES = {"job": 32, "analysis": 8}


def submit(kind: str, fn: Callable[..., Any], *args: Any) -> futures.Future:
    """Run ``fn(*args)`` on the shared ``kind`` pool.

    A pool exists only while it has work: when its last task ends it is shut
    down, so no idle worker threads outlive the experiments that used them.
    """

    def task() -> Any:
        try:
            return fn(*args)
        finally:
            with _pool_lock:
                _pending[kind] -= 1
                if _pending[kind] == 0 and _pools.get(kind) is executor:
                    del _pools[kind]
                    executor.shutdown(wait=False)

    with _pool_lock:
        executor = _pools.get(kind)
        if executor is None:
            executor = _pools[kind] = futures.ThreadPoolExecutor(
                max_workers=_POOL_SIZES[kind], thread_name_prefix=f"qdataset-{kind}")
        _pending[kind] += 1
        return executor.submit(task)


def resolve(future: futures.Future, value: Any) -> bool:
    """Set ``future``'s result unless it already has one; True if this call set it."""
    try:
        future.set_result(value)
    except futures.InvalidStateError:
        return False
    return True


def resolved(value: Any) -> futures.Future:
    """A future that already holds ``value``."""
    future: futures.Future = futures.Future()
    future.set_result(value)
    return future


def id_set(ids: str | Iterable[str] | None) -> set[str] | None:
    """The ids a cancel_*() call selects: one id, several, or None for all."""
    if ids is None:
        return None
    return {ids} if isinstance(ids, str) else set(ids)


def format_exception(exc: BaseException) -> str:
    """The traceback text recorded for a failed job or analysis callback."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
