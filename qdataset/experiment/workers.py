"""Worker threads and futures of one experiment.

Each :class:`~qdataset.experiment.ExperimentData` owns a :class:`Workers`:
one pool of threads that wait for jobs (they block in ``job.result()``) and
one that runs analysis callbacks.  A pool starts threads only when work is
submitted and a thread ends as soon as its queue is empty, so an experiment
that is never closed leaves no thread behind once its jobs and callbacks are
done, and a long session does not accumulate idle threads per experiment.
``close()`` additionally refuses new work.

Analysis callbacks never wait inside a pool thread: :func:`when_all_done`
submits them only once the futures they depend on have finished.

>>> workers = Workers("exp-1")
>>> future = workers.jobs.submit(collect, record)
>>> when_all_done([future], lambda: print("all done"))
>>> workers.close()
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

from .errors import ExperimentClosedError, ExperimentDataError

#: Threads per experiment waiting on jobs.  Analysis callbacks of one experiment
#: run one after the other, so one analysis thread per experiment is enough.
JOB_THREADS = 16
ANALYSIS_THREADS = 1


class WorkerPool:
    """Up to ``max_workers`` threads that exist only while there is queued work.

    Unlike :class:`concurrent.futures.ThreadPoolExecutor`, idle workers do not
    stay alive until shutdown: the pool needs no shutdown to release them.
    Threads are not daemons, so (as with the executor) the interpreter lets
    collected job results reach the database before it exits.
    """

    def __init__(self, name: str, max_workers: int) -> None:
        self._name = name
        self._max_workers = max_workers
        self._lock = threading.Lock()  # leaf lock: nothing is called while it is held
        self._tasks: deque[tuple[futures.Future, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future:
        """Run ``fn(*args)`` on a worker thread; the future holds its outcome."""
        future: futures.Future = futures.Future()
        with self._lock:
            if self._closed:
                raise ExperimentClosedError(
                    f"{self._name} was closed; create a new ExperimentData for more work")
            task = (future, fn, args)
            self._tasks.append(task)
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._work, name=self._name)
                self._threads.add(thread)
                try:
                    thread.start()
                except RuntimeError as exc:  # e.g. at interpreter shutdown, or no threads left
                    self._threads.discard(thread)
                    if not self._threads:
                        self._tasks.remove(task)
                        raise ExperimentDataError(
                            f"{self._name} could not start a worker thread: {exc}") from exc
        return future

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                if not self._tasks:
                    self._threads.discard(me)  # no idle workers: end with the queue
                    return
                future, fn, args = self._tasks.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(exc)
            else:
                future.set_result(value)

    def close(self, timeout: float | None = 0) -> bool:
        """Refuse new work; wait up to ``timeout`` s (None: no limit) for the threads.

        Work already queued still runs (a job waiter must record its job's end;
        queued analysis is cancelled by its runner, not here).  Returns True if
        no worker thread is left.  A worker blocked in a job's ``result()``
        cannot be interrupted; it ends when the job does.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads - {threading.current_thread()})
        if timeout is None or timeout > 0:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            return not (self._threads - {threading.current_thread()})

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active_threads(self) -> int:
        """Worker threads alive now (busy ones; idle workers do not exist)."""
        with self._lock:
            return len(self._threads)


class Workers:
    """The two pools of one experiment: job waiters and analysis callbacks."""

    def __init__(self, owner: str) -> None:
        self.jobs = WorkerPool(f"qdataset-job-{owner[:8]}", JOB_THREADS)
        self.analysis = WorkerPool(f"qdataset-analysis-{owner[:8]}", ANALYSIS_THREADS)

    def close(self, timeout: float | None = 0) -> bool:
        """Close both pools (see :meth:`WorkerPool.close`); True if no thread is left."""
        analysis = self.analysis.close(timeout)
        jobs = self.jobs.close(timeout)
        return analysis and jobs

    @property
    def closed(self) -> bool:
        return self.jobs.closed


def when_all_done(depends: Iterable[futures.Future], then: Callable[[], None],
                  early: Callable[[futures.Future], bool] | None = None) -> None:
    """Call ``then()`` once: when every future in ``depends`` has finished, or as
    soon as one finishes for which ``early(future)`` is true.

    ``then`` runs on the thread that finishes that future (or on this one if
    the condition already holds), so nothing occupies a thread while waiting.
    """
    pending = list(depends)
    lock = threading.Lock()
    state = {"left": len(pending), "fired": False}

    def one_done(future: futures.Future | None) -> None:
        with lock:
            if future is not None:
                state["left"] -= 1
            fire = not state["fired"] and (
                state["left"] == 0 or (future is not None and early is not None
                                       and early(future)))
            state["fired"] = state["fired"] or fire
        if fire:
            then()

    for future in pending:
        future.add_done_callback(one_done)
    if not pending:
        one_done(None)


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
