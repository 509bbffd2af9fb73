"""ExperimentData: qiskit jobs, their data, analysis, results and figures, in one database.

The behaviour follows qiskit-experiments' ExperimentData, but everything is
stored in a qdataset store instead of a remote service: the measured data are
the rows of an ordinary run (``exp.dataset``), and experiment records, job
records, analysis results, figures and child links live in the experiment
tables (see :mod:`qdataset.store.experiments`).

>>> from qiskit_aer import AerSimulator
>>> backend = AerSimulator(seed_simulator=7)
>>> exp = ExperimentData(store=store, backend=backend, experiment_type="bell")
>>> exp.add_jobs(backend.run(circuits, shots=1000))
>>> exp.add_analysis_callback(fit)            # fit(exp, **kwargs), after the jobs
>>> exp.block_for_results(timeout=60).status().name
'DONE'
>>> exp.save()
>>> same = ExperimentData.load(exp.experiment_id, store)
"""

from __future__ import annotations

import copy as copy_module
import logging
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

from ..store.experiments import ExperimentStorage
from . import jobs as job_tools
from . import rows as row_layout
from . import serialization
from .errors import (
    ExperimentDataError,
    ExperimentEntryNotFound,
    ExperimentNotFoundError,
    UnsupportedResultError,
)
from .figures import FigureData, figure_bytes
from .results import AnalysisResult
from .status import (
    AnalysisStatus,
    ExperimentStatus,
    JobStatus,
    combine_analysis_statuses,
    combine_job_statuses,
    experiment_status,
)

if TYPE_CHECKING:
    from ..dataset import DataSet
    from ..store import Store

LOG = logging.getLogger("qdataset.experiment")

_pool_lock = threading.Lock()
_pools: dict[str, futures.ThreadPoolExecutor] = {}
_pending: dict[str, int] = {"job": 0, "analysis": 0}
#: Threads waiting on jobs (they block in job.result()) and running analysis callbacks.
_POOL_SIZES = {"job": 32, "analysis": 8}


def _submit(kind: str, fn: Callable[..., Any], *args: Any) -> futures.Future:
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


def _resolve(future: futures.Future, value: Any) -> bool:
    """Set ``future``'s result unless it already has one; True if this call set it."""
    try:
        future.set_result(value)
    except futures.InvalidStateError:
        return False
    return True


def _resolved(value: Any) -> futures.Future:
    future: futures.Future = futures.Future()
    future.set_result(value)
    return future


class _JobRecord:
    """qdataset's own record of one job: it outlives the job object."""

    def __init__(self, job_id: str, job: Any, backend_name: str | None, kind: str,
                 submitted_at: float, status: JobStatus) -> None:
        self.job_id = job_id
        self.job = job
        self.backend_name = backend_name
        self.kind = kind
        self.submitted_at = submitted_at
        self.finished_at: float | None = None
        self.status = status  # the recorded status; final once ``outcome`` is resolved
        self.error_message: str | None = None
        self.outcome: futures.Future = futures.Future()  # -> True if DONE, else False
        self.acknowledged = False  # seen finished by block_for_results / cancel_jobs

    @property
    def final(self) -> bool:
        return self.outcome.done()

    def current_status(self) -> JobStatus:
        if self.final or self.job is None:
            return self.status
        live = job_tools.live_status(self.job)
        if live is None or live is JobStatus.DONE:
            return JobStatus.RUNNING  # finished on the backend, data still being collected
        return live

    def to_row(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "backend_name": self.backend_name, "kind": self.kind,
                "submitted_at": self.submitted_at, "finished_at": self.finished_at,
                "status": self.current_status().name, "error_message": self.error_message}


class _Callback:
    """One queued analysis callback and how it ended."""

    def __init__(self, name: str, callback_id: str | None = None,
                 status: AnalysisStatus = AnalysisStatus.QUEUED) -> None:
        self.callback_id = callback_id or uuid.uuid4().hex
        self.name = name
        self.status = status
        self.error_message: str | None = None
        self.cancel_request: futures.Future = futures.Future()
        self.future: futures.Future = _resolved(status is AnalysisStatus.DONE)
        self.acknowledged = False

    def to_row(self) -> dict[str, Any]:
        return {"callback_id": self.callback_id, "name": self.name, "status": self.status.name,
                "error_message": self.error_message}


class ExperimentData:
    """Jobs, data, analysis results and figures of one experiment, kept in a qdataset store.

    >>> exp = ExperimentData(store=store, backend=AerSimulator(seed_simulator=7),
    ...                      experiment_type="bell", tags=["calibration"])
    >>> exp.add_jobs(job, timeout=60)     # qiskit jobs; data rows arrive in exp.dataset
    >>> exp.add_analysis_callback(fit, threshold=0.9)
    >>> exp.block_for_results()
    >>> exp.data(0)["counts"]
    {'00': 512, '11': 488}
    >>> xs = exp.dataset.get_data("shots")[0]     # numpy reads, cursors, subscriptions

    Args:
        store: the qdataset store (default: the process-wide default store).
        backend: the backend the jobs run on (its name is recorded).
        experiment_type: a free-form type name, also the name of the data run.
        parent_id: experiment id of the parent, for child experiments.
        experiment_id: use this id instead of a fresh UUID.
        tags, notes, metadata: descriptive fields, saved with the experiment.
        child_data: child experiments to attach.
        auto_save: save after every change (see :attr:`auto_save`).
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        backend: Any = None,
        experiment_type: str | None = None,
        parent_id: str | None = None,
        experiment_id: str | None = None,
        tags: Iterable[str] | None = None,
        notes: str = "",
        metadata: dict[str, Any] | None = None,
        child_data: Iterable[ExperimentData] | None = None,
        auto_save: bool = False,
        _dataset: DataSet | None = None,
    ) -> None:
        if store is None:
            from ..store import default_store

            store = default_store()
        self._store = store
        self._storage = ExperimentStorage(store)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._local = threading.local()
        self._experiment_id = experiment_id or str(uuid.uuid4())
        self._experiment_type = experiment_type
        self._parent_id = parent_id
        self._backend = None
        self._backend_name: str | None = None
        if backend is not None:
            self._set_backend(backend)
        self._tags = _clean_tags(tags or [])
        self._notes = str(notes)
        self._metadata: dict[str, Any] = dict(metadata or {})
        now = time.time()
        self._created_at = now
        self._updated_at = now
        self._jobs: OrderedDict[str, _JobRecord] = OrderedDict()
        self._callbacks: OrderedDict[str, _Callback] = OrderedDict()
        self._results: OrderedDict[str, AnalysisResult] = OrderedDict()
        self._figures: OrderedDict[str, FigureData] = OrderedDict()
        self._dirty_figures: set[str] = set()
        self._children: OrderedDict[str, ExperimentData] = OrderedDict()
        self._history: list[tuple[str, float]] = []
        self._auto_save = False
        if _dataset is None:
            from ..dataset import DataSet

            _dataset = DataSet(experiment_type or "experiment", row_layout.data_specs(),
                               store=store)
            _dataset.add_metadata("experiment_id", self._experiment_id)
            if experiment_type:
                _dataset.add_metadata("experiment_type", experiment_type)
        self._dataset = _dataset
        self._note_status()
        for child in child_data or []:
            self.add_child_data(child)
        if auto_save:
            self.auto_save = True

    # -- identity and descriptive fields ----------------------------------------------------
    @property
    def experiment_id(self) -> str:
        """The experiment's UUID (a string)."""
        return self._experiment_id

    @property
    def experiment_type(self) -> str | None:
        return self._experiment_type

    @experiment_type.setter
    def experiment_type(self, value: str | None) -> None:
        self._experiment_type = value
        self._changed()

    @property
    def parent_id(self) -> str | None:
        """Experiment id of the parent experiment, for child data."""
        return self._parent_id

    @parent_id.setter
    def parent_id(self, value: str | None) -> None:
        self._parent_id = value
        self._changed()

    @property
    def backend(self) -> Any:
        """The backend object (None after :meth:`load`; see :attr:`backend_name`)."""
        return self._backend

    @backend.setter
    def backend(self, backend: Any) -> None:
        self._set_backend(backend)
        for child in self._children.values():
            child._set_backend(backend)
        self._changed()

    def _set_backend(self, backend: Any) -> None:
        self._backend = backend
        self._backend_name = job_tools.backend_name(backend)

    @property
    def backend_name(self) -> str | None:
        return self._backend_name

    @property
    def tags(self) -> list[str]:
        """Tags (a sorted list without duplicates); assign a list to change them."""
        return list(self._tags)

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        if not isinstance(tags, list | tuple):
            raise ExperimentDataError(
                f"tags must be a list of strings, got {type(tags).__name__}; "
                "e.g. exp.tags = ['calibration']")
        self._tags = _clean_tags(tags)
        self._changed()

    @property
    def notes(self) -> str:
        return self._notes

    @notes.setter
    def notes(self, notes: str) -> None:
        self._notes = str(notes)
        self._changed()

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form JSON-able metadata; edit in place, then :meth:`save`."""
        return self._metadata

    @property
    def store(self) -> Store:
        return self._store

    @property
    def dataset(self) -> DataSet:
        """The run holding this experiment's data rows (see :mod:`qdataset.experiment.rows`)."""
        return self._dataset

    @property
    def created_at(self) -> float:
        return self._created_at

    @property
    def updated_at(self) -> float:
        return self._updated_at

    @property
    def status_history(self) -> list[tuple[str, float]]:
        """The experiment statuses seen so far, as (status name, unix time), oldest first."""
        with self._lock:
            return list(self._history)

    @property
    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    @property
    def figure_names(self) -> list[str]:
        with self._lock:
            return list(self._figures)

    # -- data ----------------------------------------------------------------------------------
    def add_data(self, data: Any) -> None:
        """Add data: a qiskit Result or PrimitiveResult, a dict, or a list of those.

        Dicts are stored as given (known keys such as ``counts`` and ``shots``
        in their own columns, the rest as JSON).  A Result's job id gets a job
        record; a failed Result records that job as ERROR.  Job objects are
        handed to :meth:`add_jobs`.
        """
        items = data if isinstance(data, list) else [data]
        rows: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, dict):
                rows.append(item)
            elif job_tools.is_job(item):
                self.add_jobs(item)
            else:
                job_id = getattr(item, "job_id", None)
                job_id = None if callable(job_id) or job_id is None else str(job_id)
                try:
                    new = job_tools.rows_from_result(item, job_id)
                except job_tools.ResultFailedError as exc:
                    self._record_result_job(job_id, JobStatus.ERROR, str(exc), exc.rows)
                    continue
                if job_id is not None and job_id not in self._jobs:
                    self._record_result_job(job_id, JobStatus.DONE, None, new)
                else:
                    rows.extend(new)
        if rows:
            with self._lock:
                self._add_rows(rows)
        self._note_status()
        self._changed()

    def _record_result_job(self, job_id: str | None, status: JobStatus, message: str | None,
                           rows: list[dict[str, Any]]) -> None:
        if job_id is None:
            with self._lock:
                self._add_rows(rows)
            if status is JobStatus.ERROR:
                raise ExperimentDataError(
                    f"the result reports failure ({message}); the rows of the circuits "
                    "that succeeded were added")
            return
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                record = _JobRecord(job_id, None, self._backend_name, "result", time.time(),
                                    JobStatus.RUNNING)
                self._jobs[job_id] = record
        self._finish(record, status, message, rows)

    def _add_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        encoded = [row_layout.encode(row) for row in rows]
        if encoded:
            self._dataset.add_results(encoded)

    def data(self, index: int | slice | str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """The data dicts: all (None), one (int), some (slice) or those of a job (job id).

        >>> exp.data(0)
        {'job_id': '...', 'circuit_index': 0, 'kind': 'counts', 'counts': {'00': 512, ...},
         'shots': 1000, 'meas_level': 2, 'metadata': {...}}
        """
        if index is None or isinstance(index, slice | str):
            rows = self._read_rows()
            if index is None:
                return rows
            if isinstance(index, slice):
                return rows[index]
            return [row for row in rows if row.get("job_id") == index]
        if isinstance(index, int):
            length = self._dataset.length
            position = index + length if index < 0 else index
            if not 0 <= position < length:
                raise ExperimentEntryNotFound(
                    f"experiment {self.experiment_id} has {length} data rows, so index "
                    f"{index} does not exist; use exp.data() to see them all")
            return self._read_rows(position, position + 1)[0]
        raise TypeError(f"data index must be int, slice, job id or None, not {type(index)}")

    def _read_rows(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        columns = self._dataset.get_data(*row_layout.NAMES, start=start, end=end)
        return [row_layout.decode(values) for values in row_layout.columns_to_values(columns)]

    # -- jobs ------------------------------------------------------------------------------------
    def add_jobs(self, jobs: Any, timeout: float | None = None) -> None:
        """Collect the results of ``jobs`` (one job or a list) into this experiment.

        Accepts qiskit jobs (``AerSimulator().run``, ``GenericBackendV2.run``,
        Aer ``SamplerV2``/``EstimatorV2`` jobs) and any object with ``job_id()``,
        ``status()`` and ``result()``.  Each job is waited on by a thread of a
        pool; its rows arrive in :attr:`dataset` as soon as it finishes.

        ``timeout``: jobs not finished that many seconds from now are recorded
        as CANCELLED (by timeout) in qdataset's records and cancelled on the
        backend where possible; results arriving later are discarded.  A
        running Aer job cannot be stopped, only queued ones.
        """
        job_list = list(_flatten(jobs))
        for job in job_list:
            if not job_tools.is_job(job):
                raise UnsupportedResultError(
                    f"{type(job).__name__} is not a job (it needs job_id(), status() and "
                    "result()); pass results with add_data() instead")
        added: list[_JobRecord] = []
        with self._lock:
            for job in job_list:
                job_id = str(job.job_id())
                if job_id in self._jobs:
                    LOG.warning("job %s is already part of experiment %s; skipped",
                                job_id, self.experiment_id)
                    continue
                name = job_tools.job_backend_name(job)
                if name is not None and self._backend_name is None:
                    self._backend_name = name
                    if self._backend is None:
                        try:
                            self._backend = job.backend()
                        except Exception:  # noqa: BLE001
                            self._backend = None
                elif name is not None and name != self._backend_name:
                    LOG.warning("job %s ran on %s, not on this experiment's backend %s",
                                job_id, name, self._backend_name)
                status = job_tools.live_status(job) or JobStatus.INITIALIZING
                record = _JobRecord(job_id, job, name or self._backend_name,
                                    job_tools.job_kind(job), time.time(),
                                    JobStatus.RUNNING if status.is_final else status)
                self._jobs[job_id] = record
                added.append(record)
            for record in added:
                _submit("job", self._collect, record)
        if timeout is not None and added:
            watcher = threading.Thread(target=self._watch_timeout, args=(added, float(timeout)),
                                       name="qdataset-job-timeout", daemon=True)
            watcher.start()
        self._note_status()
        self._changed()

    def jobs(self) -> list[Any]:
        """The job objects (None for jobs known only from records, e.g. after load)."""
        with self._lock:
            return [record.job for record in self._jobs.values()]

    def _collect(self, record: _JobRecord) -> None:
        """Pool thread: wait for one job and turn its result into rows and a final status."""
        job = record.job
        try:
            result = job.result()
        except BaseException as exc:  # noqa: BLE001 - recorded, never lost
            live = job_tools.live_status(job)
            if live is JobStatus.CANCELLED or isinstance(exc, futures.CancelledError):
                self._finish(record, JobStatus.CANCELLED, "the job was cancelled on the backend")
            else:
                message = job_tools.error_message(job) or _format_exception(exc)
                self._finish(record, JobStatus.ERROR, message)
            return
        try:
            rows = job_tools.rows_from_result(result, record.job_id)
        except job_tools.ResultFailedError as exc:
            self._finish(record, JobStatus.ERROR, str(exc), exc.rows)
        except BaseException as exc:  # noqa: BLE001
            self._finish(record, JobStatus.ERROR,
                         "its result could not be stored:\n" + _format_exception(exc))
        else:
            self._finish(record, JobStatus.DONE, None, rows)

    def _finish(self, record: _JobRecord, status: JobStatus, message: str | None,
                rows: Sequence[dict[str, Any]] = ()) -> bool:
        """Make ``status`` the job's final status (first caller wins); add its rows."""
        with self._lock:
            if record.final:
                if rows:
                    LOG.warning("job %s finished after it was recorded as %s; its results "
                                "were not added", record.job_id, record.status.name)
                return False
            try:
                self._add_rows(rows)
            except Exception as exc:  # noqa: BLE001 - e.g. the run was completed meanwhile
                status = JobStatus.ERROR
                message = "its rows could not be stored:\n" + _format_exception(exc)
            record.status = status
            record.error_message = message
            record.finished_at = time.time()
            _resolve(record.outcome, status is JobStatus.DONE)
        if status is JobStatus.ERROR:
            LOG.warning("job %s of experiment %s failed: %s", record.job_id,
                        self.experiment_id, message)
        self._note_status()
        self._changed()
        return True

    def _watch_timeout(self, records: list[_JobRecord], timeout: float) -> None:
        done, not_done = futures.wait([r.outcome for r in records], timeout=timeout)
        late = [r for r in records if not r.final]
        if late:
            self._cancel_records(late, f"not finished within the add_jobs timeout of {timeout} s")

    def _cancel_records(self, records: Iterable[_JobRecord], reason: str) -> bool:
        all_cancelled = True
        for record in records:
            if record.final:
                record.acknowledged = True
                continue
            cancelled = False
            if record.job is not None and callable(getattr(record.job, "cancel", None)):
                try:
                    answer = record.job.cancel()
                    cancelled = answer is None or bool(answer)
                except Exception as exc:  # noqa: BLE001 - cannot cancel: recorded anyway
                    LOG.info("job %s could not be cancelled: %s", record.job_id, exc)
            if not cancelled:
                all_cancelled = False
                reason_text = f"{reason} (the backend could not stop it)"
            else:
                reason_text = reason
            self._finish(record, JobStatus.CANCELLED, reason_text)
            record.acknowledged = True
        return all_cancelled

    def cancel_jobs(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel unfinished jobs (all, or those with the given ids).

        They are recorded as CANCELLED at once; results that still arrive are
        discarded.  Returns False if the backend could not stop some of them
        (running Aer jobs cannot be stopped).
        """
        with self._lock:
            wanted = _id_set(ids)
            records = [r for jid, r in self._jobs.items() if wanted is None or jid in wanted]
        return self._cancel_records(records, "cancelled by cancel_jobs()")

    # -- analysis ----------------------------------------------------------------------------
    def add_analysis_callback(self, callback: Callable[..., Any], **kwargs: Any) -> str:
        """Run ``callback(self, **kwargs)`` once the jobs and earlier callbacks finish.

        Callbacks run in the order they were added.  If a job or an earlier
        callback did not succeed, the callback is CANCELLED instead of run; a
        callback that raises is recorded as ERROR with its traceback, and the
        callbacks queued after it are CANCELLED.  Returns the callback id.

        >>> def fit(exp, threshold=0.5):
        ...     exp.add_analysis_results(AnalysisResult("p0", value=...))
        >>> exp.add_analysis_callback(fit, threshold=0.9)
        """
        with self._lock:
            record = _Callback(getattr(callback, "__name__", repr(callback)))
            depends = [r.outcome for r in self._jobs.values() if not r.acknowledged]
            depends += [c.future for c in self._callbacks.values() if not c.acknowledged]
            self._callbacks[record.callback_id] = record
            record.future = _submit("analysis", self._run_callback, record, depends,
                                    callback, kwargs)
        self._note_status()
        return record.callback_id

    def _run_callback(self, record: _Callback, depends: list[futures.Future],
                      callback: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
        while True:
            if record.cancel_request.done():
                return False
            if any(f.done() and (f.exception() is not None or f.result() is False)
                   for f in depends):
                self._cancel_callback(record, "not run: a job or an earlier analysis callback "
                                      "did not succeed")
                return False
            pending = [f for f in depends if not f.done()]
            if not pending:
                break
            futures.wait([*pending, record.cancel_request], return_when=futures.FIRST_COMPLETED)
        with self._lock:
            if record.status is not AnalysisStatus.QUEUED:
                return False
            record.status = AnalysisStatus.RUNNING
        self._note_status()
        self._local.running = record.callback_id
        try:
            callback(self, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback
            with self._lock:
                record.status = AnalysisStatus.ERROR
                record.error_message = _format_exception(exc)
                later = list(self._callbacks.values())
                later = later[later.index(record) + 1:]
                for other in later:
                    self._cancel_callback(other, f"cancelled because analysis callback "
                                                 f"{record.name!r} failed")
            LOG.warning("analysis callback %s of experiment %s failed:\n%s", record.name,
                        self.experiment_id, record.error_message)
            return False
        else:
            with self._lock:
                record.status = AnalysisStatus.DONE
            return True
        finally:
            self._local.running = None
            self._note_status()
            self._changed()

    def _cancel_callback(self, record: _Callback, reason: str) -> bool:
        """Cancel a queued callback; False if it is running (it cannot be stopped)."""
        with self._lock:
            if record.status is AnalysisStatus.QUEUED:
                record.status = AnalysisStatus.CANCELLED
                record.error_message = reason
                _resolve(record.cancel_request, True)
                return True
            return record.status is not AnalysisStatus.RUNNING

    def cancel_analysis(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel queued analysis callbacks (all, or those with the given ids).

        A running callback cannot be stopped: then the answer is False.
        """
        with self._lock:
            wanted = _id_set(ids)
            records = [c for cid, c in self._callbacks.items() if wanted is None or cid in wanted]
            answer = all([self._cancel_callback(c, "cancelled by cancel_analysis()")
                          for c in reversed(records)])
        self._note_status()
        self._changed()
        return answer

    def cancel(self) -> bool:
        """Cancel queued analysis, then unfinished jobs; True if everything stopped."""
        analysis = self.cancel_analysis()
        jobs = self.cancel_jobs()
        return analysis and jobs

    def _pending_futures(self, include_jobs: bool = True) -> list[futures.Future]:
        """Futures to wait for; inside a callback, not that callback nor later ones."""
        with self._lock:
            out = [r.outcome for r in self._jobs.values()] if include_jobs else []
            running = getattr(self._local, "running", None)
            for cid, callback in self._callbacks.items():
                if cid == running:
                    break
                out.append(callback.future)
        return [f for f in out if not f.done()]

    def block_for_results(self, timeout: float | None = None) -> ExperimentData:
        """Wait until all jobs and analysis callbacks have finished (or ``timeout`` s passed).

        Returns self, so ``exp.block_for_results().status()`` reads naturally.
        Jobs and callbacks that finished are then no longer waited on by new
        callbacks (as in qiskit-experiments).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = self._pending_futures()
            if not pending:
                break
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            futures.wait(pending, timeout=remaining)
            if deadline is not None and time.monotonic() >= deadline:
                LOG.info("block_for_results: timed out waiting for experiment %s",
                         self.experiment_id)
                break
        with self._lock:
            for record in self._jobs.values():
                if record.final:
                    record.acknowledged = True
            for callback in self._callbacks.values():
                if callback.future.done():
                    callback.acknowledged = True
        self._note_status()
        return self

    # -- status --------------------------------------------------------------------------------
    def job_status(self) -> JobStatus:
        """Combined job status: ERROR > CANCELLED > RUNNING > QUEUED > ... > DONE."""
        with self._lock:
            return combine_job_statuses(r.current_status() for r in self._jobs.values())

    def analysis_status(self) -> AnalysisStatus:
        """Combined analysis status: ERROR > CANCELLED > RUNNING > QUEUED > DONE."""
        with self._lock:
            return combine_analysis_statuses(c.status for c in self._callbacks.values())

    def status(self) -> ExperimentStatus:
        """The experiment's status (see :class:`ExperimentStatus`); errors come first.

        EMPTY without any data, job, callback, result or figure; otherwise ERROR
        or CANCELLED if any job or callback ended so; the job state while jobs
        are unfinished; POST_PROCESSING while callbacks are queued or running;
        else DONE.  Every change is appended to :attr:`status_history`.
        """
        return self._note_status()

    def _compute_status(self) -> ExperimentStatus:
        with self._lock:
            empty = not (self._jobs or self._callbacks or self._results or self._figures
                         or self._children or self._dataset.length)
            return experiment_status(empty, self.job_status(), self.analysis_status())

    def _note_status(self) -> ExperimentStatus:
        status = self._compute_status()
        with self._lock:
            if not self._history or self._history[-1][0] != status.name:
                self._history.append((status.name, time.time()))
        return status

    def job_errors(self) -> str:
        """Error messages of failed jobs, one ``[Job ID: ...]`` entry per job."""
        with self._lock:
            return "".join(f"\n[Job ID: {r.job_id}]: {r.error_message or 'failed'}"
                           for r in self._jobs.values() if r.current_status() is JobStatus.ERROR)

    def analysis_errors(self) -> str:
        """Tracebacks of failed analysis callbacks."""
        with self._lock:
            return "".join(f"\n[Analysis Callback ID: {c.callback_id}] {c.name}: "
                           f"{c.error_message}"
                           for c in self._callbacks.values() if c.status is AnalysisStatus.ERROR)

    def errors(self) -> str:
        """All job and analysis errors ("" if none)."""
        return self.job_errors() + self.analysis_errors()

    def job_records(self) -> list[dict[str, Any]]:
        """qdataset's records of the jobs: id, backend, timestamps, status, error message."""
        with self._lock:
            return [r.to_row() for r in self._jobs.values()]

    def analysis_callbacks(self) -> list[dict[str, Any]]:
        """Records of the analysis callbacks: id, name, status, error message or reason."""
        with self._lock:
            return [c.to_row() for c in self._callbacks.values()]

    # -- analysis results ------------------------------------------------------------------------
    def add_analysis_results(self, results: AnalysisResult | Iterable[AnalysisResult]) -> None:
        """Add one or more :class:`AnalysisResult`.

        >>> exp.add_analysis_results(AnalysisResult("fidelity", 0.98, quality="good"))
        """
        items = [results] if isinstance(results, AnalysisResult) else list(results)
        for item in items:
            if not isinstance(item, AnalysisResult):
                raise TypeError(f"expected AnalysisResult objects, got {type(item).__name__}")
        with self._lock:
            for item in items:
                item.experiment_id = self.experiment_id
                self._results[item.result_id] = item
        self._note_status()
        self._changed()

    def analysis_results(self, index: int | slice | str | None = None, *, block: bool = True,
                         timeout: float | None = None) -> Any:
        """Analysis results: all, by position, slice, result id or name.

        With ``block`` (the default) it first waits for running analysis
        callbacks.  A name shared by several results gives a list.
        """
        if block:
            futures.wait(self._pending_futures(include_jobs=False), timeout=timeout)
        with self._lock:
            values = list(self._results.values())
            if index is None:
                return values
            if isinstance(index, int):
                if -len(values) <= index < len(values):
                    return values[index]
            elif isinstance(index, slice):
                if values[index]:
                    return values[index]
            elif isinstance(index, str):
                if index in self._results:
                    return self._results[index]
                named = [r for r in values if r.name == index]
                if len(named) == 1:
                    return named[0]
                if named:
                    return named
            else:
                raise TypeError(f"analysis result index must be int, slice or str, "
                                f"not {type(index).__name__}")
        message = (f"experiment {self.experiment_id} has no analysis result {index!r}; "
                   f"names present: {sorted({r.name for r in values})}")
        errors = self.errors()
        if errors:
            message += f"\nErrors:{errors}"
        raise ExperimentEntryNotFound(message)

    def delete_analysis_result(self, key: int | str) -> str:
        """Delete an analysis result by position, id or (unique) name; returns its id."""
        with self._lock:
            if isinstance(key, int):
                found = self.analysis_results(key, block=False)
            else:
                found = self.analysis_results(key, block=False)
                if isinstance(found, list):
                    raise ExperimentDataError(
                        f"{len(found)} analysis results are named {key!r}; delete one by id")
            del self._results[found.result_id]
        self._note_status()
        self._changed()
        return found.result_id

    # -- figures -----------------------------------------------------------------------------------
    def add_figures(self, figures: Any, figure_names: str | Sequence[str] | None = None,
                    overwrite: bool = False) -> str | list[str]:
        """Add figures: matplotlib Figures (stored as SVG), SVG text/bytes or PNG bytes.

        Names default to ``figure_<id>_<n>``; a name already in use gets a
        ``-1``, ``-2``, ... suffix unless ``overwrite``.  Returns the name(s)
        used: a str for one figure, a list for a list.

        >>> exp.add_figures(fig, figure_names="hist")
        'hist'
        """
        single = not isinstance(figures, list | tuple)
        items = [figures] if single else list(figures)
        if figure_names is None:
            names: list[str | None] = [None] * len(items)
        else:
            names = [figure_names] if isinstance(figure_names, str) else list(figure_names)
            if len(names) != len(items):
                raise ExperimentDataError(
                    f"{len(items)} figures but {len(names)} figure_names; give one name each")
        used: list[str] = []
        with self._lock:
            for figure, name in zip(items, names, strict=True):
                data, fmt = figure_bytes(figure)
                name = name or f"figure_{self.experiment_id[:8]}_{len(self._figures)}"
                if not overwrite:
                    name = _unique_name(name, self._figures)
                self._figures[name] = FigureData(name, fmt, data)
                self._dirty_figures.add(name)
                used.append(name)
        self._note_status()
        self._changed()
        return used[0] if single else used

    def figure(self, key: str | int) -> FigureData:
        """A figure by name or position: ``.data`` (bytes), ``.format`` ("svg"/"png")."""
        with self._lock:
            if isinstance(key, int):
                names = list(self._figures)
                if -len(names) <= key < len(names):
                    return self._figures[names[key]]
            elif key in self._figures:
                return self._figures[key]
            raise ExperimentEntryNotFound(
                f"experiment {self.experiment_id} has no figure {key!r}; "
                f"figures: {list(self._figures)}")

    def delete_figure(self, key: str | int) -> str:
        """Delete a figure by name or position; returns its name."""
        name = self.figure(key).name
        with self._lock:
            del self._figures[name]
            self._dirty_figures.discard(name)
        self._note_status()
        self._changed()
        return name

    # -- children ------------------------------------------------------------------------------
    def add_child_data(self, experiment_data: ExperimentData) -> None:
        """Attach a child experiment (its ``parent_id`` becomes this experiment's id)."""
        if not isinstance(experiment_data, ExperimentData):
            raise TypeError(f"child data must be ExperimentData, "
                            f"not {type(experiment_data).__name__}")
        experiment_data._parent_id = self.experiment_id
        with self._lock:
            self._children[experiment_data.experiment_id] = experiment_data
        self._changed()

    def child_data(self, index: int | slice | str | None = None) -> Any:
        """Child experiments: all, by position, slice, or experiment id."""
        with self._lock:
            children = list(self._children.values())
            if index is None:
                return children
            if isinstance(index, int | slice):
                try:
                    return children[index]
                except IndexError:
                    pass
            elif isinstance(index, str):
                if index in self._children:
                    return self._children[index]
            else:
                raise TypeError(f"child index must be int, slice or experiment id, "
                                f"not {type(index).__name__}")
        raise ExperimentEntryNotFound(
            f"experiment {self.experiment_id} has no child {index!r}; "
            f"children: {list(self._children)}")

    # -- copy ----------------------------------------------------------------------------------
    def copy(self, copy_results: bool = True) -> ExperimentData:
        """A copy with a new experiment id and a new data run.

        Data rows, job records (unfinished jobs are followed by the copy too),
        tags, notes and metadata are copied; with ``copy_results`` also the
        analysis results (new result ids), figures and children (copied
        recursively).  Analysis callbacks are not copied.  Do not call it from
        inside an analysis callback with ``copy_results=True``.
        """
        new = ExperimentData(store=self._store, backend=self._backend,
                             experiment_type=self._experiment_type, parent_id=self._parent_id,
                             tags=self._tags, notes=self._notes,
                             metadata=copy_module.deepcopy(self._metadata))
        new._backend_name = self._backend_name
        with self._lock:
            new._add_rows(self.data())
            for job_id, record in self._jobs.items():
                twin = _JobRecord(job_id, record.job, record.backend_name, record.kind,
                                  record.submitted_at, record.status)
                new._jobs[job_id] = twin
                if record.final or record.job is None:
                    twin.finished_at = record.finished_at
                    twin.error_message = record.error_message
                    _resolve(twin.outcome, record.status is JobStatus.DONE)
                    twin.acknowledged = record.acknowledged
                else:
                    _submit("job", new._collect, twin)
        if copy_results:
            futures.wait(self._pending_futures(include_jobs=False))
            with self._lock:
                new.add_analysis_results([r.copy() for r in self._results.values()])
                for name, fig in self._figures.items():
                    new._figures[name] = fig.copy()
                    new._dirty_figures.add(name)
                children = list(self._children.values())
            for child in children:
                new.add_child_data(child.copy(copy_results=True))
        new._note_status()
        if self._auto_save:
            new.auto_save = True
        return new

    # -- persistence -----------------------------------------------------------------------------
    @property
    def auto_save(self) -> bool:
        """Save after every change when True (setting it to True saves at once).

        Edits of :attr:`metadata` in place are not noticed: call :meth:`save`.
        """
        return self._auto_save

    @auto_save.setter
    def auto_save(self, value: bool) -> None:
        value = bool(value)
        for child in self.child_data():
            child.auto_save = value
        if value and not self._auto_save:
            self.save()
        self._auto_save = value

    def _changed(self) -> None:
        if getattr(self, "_auto_save", False):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - a failed auto-save must not break the caller
                LOG.exception("auto-save of experiment %s failed", self.experiment_id)

    def save(self) -> None:
        """Write the experiment, job and callback records, analysis results, figures,
        status history and children (recursively) to the store, in one transaction each.

        The data rows are written by ``exp.dataset`` itself (flushed here, so a
        :meth:`load` in another process sees all of them).
        """
        with self._save_lock:
            status = self._note_status()
            with self._lock:
                children = list(self._children.values())
            for child in children:
                child.save()
            flush = getattr(self._dataset, "flush", None)
            if callable(flush):
                flush()  # rows buffered by this process reach the database now
            with self._lock:
                self._updated_at = time.time()
                record = {
                    "experiment_id": self.experiment_id,
                    "experiment_type": self._experiment_type,
                    "parent_id": self._parent_id,
                    "backend_name": self._backend_name,
                    "dataset_id": self._dataset.id,
                    "tags": serialization.dumps(self._tags),
                    "notes": self._notes,
                    "metadata": serialization.dumps(self._metadata),
                    "status": status.name,
                    "created_at": self._created_at,
                    "updated_at": self._updated_at,
                }
                jobs = [r.to_row() for r in self._jobs.values()]
                callbacks = [c.to_row() for c in self._callbacks.values()]
                history = list(self._history)
                results = [r.to_row() for r in self._results.values()]
                names = list(self._figures)
                dirty = [name for name in names if name in self._dirty_figures]
                figures = [{"name": n, "format": self._figures[n].format,
                            "data": self._figures[n].data,
                            "created_at": self._figures[n].created_at,
                            "position": names.index(n)} for n in dirty]
                child_ids = list(self._children)
            self._storage.save(record, jobs=jobs, callbacks=callbacks, history=history,
                               results=results, figures=figures, figure_names=names,
                               children=child_ids)
            with self._lock:
                self._dirty_figures.difference_update(dirty)

    @classmethod
    def load(cls, experiment_id: str, store: Store | None = None) -> ExperimentData:
        """The experiment saved under ``experiment_id`` (in this or another process).

        Data, analysis results, figures, children, tags, notes, metadata and
        the recorded job and callback statuses come back; job objects and
        backends do not (:attr:`backend_name` is kept).
        """
        if store is None:
            from ..store import default_store

            store = default_store()
        stored = ExperimentStorage(store).load(experiment_id)
        if stored is None:
            raise ExperimentNotFoundError(
                f"no experiment {experiment_id!r} in {store!r}; check the id, or list the "
                "saved ones with ExperimentData.find(store); was save() called?")
        if stored["dataset_id"] is not None:
            dataset = store.read_dataset(stored["dataset_id"])
        else:  # pragma: no cover - always written by save()
            dataset = None
        exp = cls(store=store, experiment_type=stored["experiment_type"],
                  parent_id=stored["parent_id"], experiment_id=experiment_id,
                  tags=serialization.loads(stored["tags"]), notes=stored["notes"],
                  metadata=serialization.loads(stored["metadata"]), _dataset=dataset)
        exp._backend_name = stored["backend_name"]
        exp._created_at = stored["created_at"]
        exp._updated_at = stored["updated_at"]
        for row in stored["jobs"]:
            record = _JobRecord(row["job_id"], None, row["backend_name"], row["kind"] or "",
                                row["submitted_at"], JobStatus[row["status"]])
            record.finished_at = row["finished_at"]
            record.error_message = row["error_message"]
            _resolve(record.outcome, record.status is JobStatus.DONE)
            record.acknowledged = True
            exp._jobs[record.job_id] = record
        for row in stored["callbacks"]:
            callback = _Callback(row["name"], row["callback_id"], AnalysisStatus[row["status"]])
            callback.error_message = row["error_message"]
            callback.acknowledged = True
            exp._callbacks[callback.callback_id] = callback
        for row in stored["results"]:
            result = AnalysisResult.from_row(row)
            exp._results[result.result_id] = result
        for row in stored["figures"]:
            exp._figures[row["name"]] = FigureData(row["name"], row["format"],
                                                   bytes(row["data"]), row["created_at"])
        for child_id in stored["children"]:
            exp._children[child_id] = cls.load(child_id, store)
        exp._history = [(s, at) for s, at in stored["history"]]
        return exp

    @staticmethod
    def find(store: Store | None = None, experiment_type: str | None = None,
             parent_id: str | None = None) -> list[str]:
        """Ids of saved experiments, newest first, optionally by type or parent."""
        if store is None:
            from ..store import default_store

            store = default_store()
        rows = ExperimentStorage(store).list_experiments(experiment_type, parent_id)
        return [row["experiment_id"] for row in rows]

    # -- display ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [repr(self._experiment_type), self.experiment_id]
        if self._parent_id:
            parts.append(f"parent_id={self._parent_id}")
        if self._tags:
            parts.append(f"tags={self._tags}")
        if self._jobs:
            parts.append(f"job_ids={list(self._jobs)}")
        if self._figures:
            parts.append(f"figure_names={list(self._figures)}")
        return f"ExperimentData({', '.join(parts)})"

    def __str__(self) -> str:
        status = self.status()
        lines = [
            "-" * 51,
            f"Experiment: {self._experiment_type}",
            f"Experiment ID: {self.experiment_id}",
        ]
        if self._parent_id:
            lines.append(f"Parent ID: {self._parent_id}")
        if self._children:
            lines.append(f"Child Experiment Data: {len(self._children)}")
        lines.append(f"Status: {status.name}")
        if status is ExperimentStatus.ERROR:
            lines.append("  " + self.errors().strip().replace("\n", "\n  "))
        if self._backend_name:
            lines.append(f"Backend: {self._backend_name}")
        if self._tags:
            lines.append(f"Tags: {self._tags}")
        lines += [f"Data: {self._dataset.length} rows (run {self._dataset.id})",
                  f"Analysis Results: {len(self._results)}",
                  f"Figures: {len(self._figures)}"]
        return "\n".join(lines)


def _clean_tags(tags: Iterable[str]) -> list[str]:
    return sorted({str(tag) for tag in tags})


def _id_set(ids: str | Iterable[str] | None) -> set[str] | None:
    if ids is None:
        return None
    return {ids} if isinstance(ids, str) else set(ids)


def _unique_name(name: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if name not in taken:
        return name
    n = 1
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _flatten(jobs: Any) -> Iterable[Any]:
    if job_tools.is_job(jobs):
        yield jobs
        return
    if isinstance(jobs, list | tuple):
        for item in jobs:
            yield from _flatten(item)
        return
    yield jobs  # rejected by add_jobs with a helpful message


def _format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
