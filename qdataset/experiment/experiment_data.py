"""ExperimentData: qiskit jobs, their data, analysis, results and figures, in one database.

The behaviour follows qiskit-experiments' ExperimentData, stored in a qdataset
store instead of a remote service: the data are the rows of an ordinary run
(``exp.dataset``); experiment, job and callback records, analysis results,
figures and child links live in the experiment tables (:mod:`qdataset.store.experiments`).

ExperimentData owns its parts and gives each only what it needs: ``DataRows``
(:mod:`.rows`), ``Workers`` (:mod:`.workers`: this experiment's threads, which
exist only while there is work, so an experiment never closed leaves none
behind), ``JobRunner``, ``AnalysisRunner`` (callbacks chained after the jobs,
holding no thread while they wait), ``Artifacts`` and ``Children``
(:mod:`.artifacts`), ``ExperimentRecord`` (descriptive fields, status history)
and ``Persistence`` (:mod:`.persistence`).  This class is the public facade:
it wires the parts together and delegates to them.

Lock order: the status is computed under the ``ExperimentRecord`` lock, which
takes the parts' locks; a part never calls out while holding its own.  No
lock is held while a job is asked anything, a row is written or a callback runs.

>>> with ExperimentData(store=store, backend=backend, experiment_type="bell") as exp:
...     exp.add_jobs(backend.run(circuits, shots=1000))
...     exp.add_analysis_callback(fit)      # fit(exp, **kwargs), after the jobs
>>> exp.status().name                        # the with block waited for both
'DONE'
>>> exp.save(); same = ExperimentData.load(exp.experiment_id, store)
"""

from __future__ import annotations

import copy as copy_module
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

from ..store.experiments import ExperimentStorage
from . import persistence, serialization
from . import rows as row_layout
from .analysis_runner import AnalysisRunner
from .artifacts import Artifacts, Children
from .errors import ExperimentClosedError, UnsupportedResultError
from .figures import FigureData
from .job_runner import BackendInfo, JobRecord, JobRunner
from .persistence import ExperimentRecord, Persistence, Snapshot
from .results import AnalysisResult
from .status import AnalysisStatus, ExperimentStatus, JobStatus, experiment_status
from .workers import Workers

if TYPE_CHECKING:
    from types import TracebackType

    from ..dataset import DataSet
    from ..store import Store


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
        store = persistence.store_or_default(store)
        self._store = store
        owner = experiment_id or str(uuid.uuid4())
        self._record = ExperimentRecord(owner, experiment_type, parent_id, tags or [], notes,
                                        dict(metadata or {}))
        if _dataset is None:
            from ..dataset import DataSet

            _dataset = DataSet(experiment_type or "experiment", row_layout.data_specs(),
                               store=store)
            _dataset.add_metadata("experiment_id", owner)
            if experiment_type:
                _dataset.add_metadata("experiment_type", experiment_type)
        self._rows = row_layout.DataRows(_dataset)
        self._backend = BackendInfo(backend)
        self._workers = Workers(owner)
        self._jobs = JobRunner(owner, self._rows, self._workers.jobs, self._backend,
                               self._on_change)
        self._analysis = AnalysisRunner(owner, self._workers.analysis, self._on_change)
        self._artifacts = Artifacts(owner, self._wait_for_analysis, self.errors,
                                    self._on_change)
        self._children = Children(owner)
        self._persistence = Persistence(ExperimentStorage(store), self._prepare_save,
                                        self._snapshot)
        self._note_status(ask=False)
        for child in child_data or []:
            self.add_child_data(child)
        if auto_save:
            self.auto_save = True

    # -- identity and descriptive fields ---------------------------------------------------
    @property
    def experiment_id(self) -> str:
        """The experiment's UUID (a string)."""
        return self._record.experiment_id

    @property
    def experiment_type(self) -> str | None:
        return self._record.experiment_type

    @experiment_type.setter
    def experiment_type(self, value: str | None) -> None:
        self._record.experiment_type = value
        self._on_change()

    @property
    def parent_id(self) -> str | None:
        """Experiment id of the parent experiment, for child data."""
        return self._record.parent_id

    @parent_id.setter
    def parent_id(self, value: str | None) -> None:
        self._record.parent_id = value
        self._on_change()

    @property
    def backend(self) -> Any:
        """The backend object (None after :meth:`load`; see :attr:`backend_name`)."""
        return self._backend.backend

    @backend.setter
    def backend(self, backend: Any) -> None:
        self._backend.set(backend)
        for child in self.child_data():
            child._backend.set(backend)  # children run on the parent's backend
        self._on_change()

    @property
    def backend_name(self) -> str | None:
        return self._backend.name

    @property
    def tags(self) -> list[str]:
        """Tags (a sorted list without duplicates); assign a list to change them."""
        return self._record.tags

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        self._record.tags = tags
        self._on_change()

    @property
    def notes(self) -> str:
        return self._record.notes

    @notes.setter
    def notes(self, notes: str) -> None:
        self._record.notes = str(notes)
        self._on_change()

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form JSON-able metadata; edit in place, then :meth:`save`."""
        return self._record.metadata

    @property
    def store(self) -> Store:
        return self._store

    @property
    def dataset(self) -> DataSet:
        """The run holding this experiment's data rows (see :mod:`qdataset.experiment.rows`)."""
        return self._rows.dataset

    @property
    def created_at(self) -> float:
        return self._record.created_at

    @property
    def updated_at(self) -> float:
        return self._record.updated_at

    @property
    def status_history(self) -> list[tuple[str, float]]:
        """The experiment statuses seen so far, as (status name, unix time), oldest first."""
        return self._record.history()

    @property
    def job_ids(self) -> list[str]:
        return self._jobs.job_ids()

    @property
    def figure_names(self) -> list[str]:
        return self._artifacts.figure_names()

    # -- data and jobs ---------------------------------------------------------------------
    def add_data(self, data: Any) -> None:
        """Add data: a qiskit Result or PrimitiveResult, a dict, or a list of those.

        Dicts are stored as given (known keys such as ``counts`` and ``shots``
        in their own columns, the rest as JSON).  A Result's job id gets a job
        record; a failed Result records that job as ERROR.  Job objects are
        handed to :meth:`add_jobs`.
        """
        self._jobs.add_data(data)

    def add_jobs(self, jobs: Any, timeout: float | None = None) -> None:
        """Collect the results of ``jobs`` (one job or a list) into this experiment.

        Accepts qiskit jobs (``AerSimulator().run``, ``GenericBackendV2.run``,
        Aer ``SamplerV2``/``EstimatorV2`` jobs) and any object with ``job_id()``,
        ``status()`` and ``result()``.  Each job is waited on by a thread of
        this experiment; its rows arrive in :attr:`dataset` as soon as it finishes.

        ``timeout``: jobs not finished that many seconds from now are recorded
        as CANCELLED (by timeout) in qdataset's records and cancelled on the
        backend where possible; results arriving later are discarded.  A
        running Aer job cannot be stopped, only queued ones.
        """
        self._refuse_if_closed("add_jobs")
        self._jobs.add_jobs(jobs, timeout)

    def jobs(self) -> list[Any]:
        """The job objects (None for jobs known only from records, e.g. after load)."""
        return self._jobs.jobs()

    def data(self, index: int | slice | str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """The data dicts: all (None), one (int), some (slice) or those of a job (job id).

        >>> exp.data(0)
        {'job_id': '...', 'circuit_index': 0, 'kind': 'counts', 'counts': {'00': 512, ...},
         'shots': 1000, 'meas_level': 2, 'metadata': {...}}
        """
        return self._rows.select(index, self.experiment_id)

    def cancel_jobs(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel unfinished jobs (all, or those with the given ids).

        They are recorded as CANCELLED at once; results that still arrive are
        discarded.  Returns False if the backend could not stop some of them
        (running Aer jobs cannot be stopped).
        """
        return self._jobs.cancel(ids)

    def job_status(self) -> JobStatus:
        """Combined job status: ERROR > CANCELLED > RUNNING > QUEUED > ... > DONE."""
        return self._jobs.status()

    def job_errors(self) -> str:
        """Error messages of failed jobs, one ``[Job ID: ...]`` entry per job."""
        return self._jobs.errors()

    def job_records(self) -> list[dict[str, Any]]:
        """qdataset's records of the jobs: id, backend, timestamps, status, error message."""
        return self._jobs.records()

    # -- analysis --------------------------------------------------------------------------
    def add_analysis_callback(self, callback: Callable[..., Any], **kwargs: Any) -> str:
        """Run ``callback(self, **kwargs)`` once the jobs and earlier callbacks finish.

        Callbacks run in the order they were added.  If a job or an earlier
        callback did not succeed, the callback is CANCELLED instead of run; a
        callback that raises is recorded as ERROR with its traceback, and the
        callbacks queued after it are CANCELLED.  Returns the callback id.
        While it waits, a callback occupies no thread.

        >>> def fit(exp, threshold=0.5):
        ...     exp.add_analysis_results(AnalysisResult("p0", value=...))
        >>> exp.add_analysis_callback(fit, threshold=0.9)
        """
        self._refuse_if_closed("add_analysis_callback")
        name = getattr(callback, "__name__", repr(callback))
        return self._analysis.add(functools.partial(callback, self, **kwargs), name,
                                  self._jobs.outcomes(unacknowledged=True))

    def cancel_analysis(self, ids: str | Iterable[str] | None = None) -> bool:
        """Cancel queued analysis callbacks (all, or those with the given ids).

        A running callback cannot be stopped: then the answer is False.
        """
        return self._analysis.cancel(ids)

    def analysis_status(self) -> AnalysisStatus:
        """Combined analysis status: ERROR > CANCELLED > RUNNING > QUEUED > DONE."""
        return self._analysis.status()

    def analysis_errors(self) -> str:
        """Tracebacks of failed analysis callbacks."""
        return self._analysis.errors()

    def analysis_callbacks(self) -> list[dict[str, Any]]:
        """Records of the analysis callbacks: id, name, status, error message or reason."""
        return self._analysis.records()

    def block_for_results(self, timeout: float | None = None) -> ExperimentData:
        """Wait until all jobs and analysis callbacks have finished (or ``timeout`` s passed).

        Returns self, so ``exp.block_for_results().status()`` reads naturally.
        Jobs and callbacks that finished are then no longer waited on by new
        callbacks (as in qiskit-experiments).  Inside a callback it waits for
        the jobs and the callbacks before that one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = [f for f in self._jobs.outcomes() if not f.done()]
            pending += self._analysis.unfinished()
            if not pending:
                break
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            futures.wait(pending, timeout=remaining)
            if deadline is not None and time.monotonic() >= deadline:
                break
        self._jobs.acknowledge_finished()
        self._analysis.acknowledge_finished()
        self._note_status(ask=True)
        return self

    def _wait_for_analysis(self, timeout: float | None) -> None:
        futures.wait(self._analysis.unfinished(), timeout=timeout)

    # -- analysis results and figures ------------------------------------------------------
    def add_analysis_results(self, results: AnalysisResult | Iterable[AnalysisResult]) -> None:
        """Add one or more :class:`AnalysisResult`.

        >>> exp.add_analysis_results(AnalysisResult("fidelity", 0.98, quality="good"))
        """
        self._artifacts.add_results(results)

    def analysis_results(self, index: int | slice | str | None = None, *, block: bool = True,
                         timeout: float | None = None) -> Any:
        """Analysis results: all, by position, slice, result id or name.

        With ``block`` (the default) it first waits for running analysis
        callbacks.  A name shared by several results gives a list.
        """
        return self._artifacts.results(index, block=block, timeout=timeout)

    def delete_analysis_result(self, key: int | str) -> str:
        """Delete an analysis result by position, id or (unique) name; returns its id."""
        return self._artifacts.delete_result(key)

    def add_figures(self, figures: Any, figure_names: str | Sequence[str] | None = None,
                    overwrite: bool = False) -> str | list[str]:
        """Add figures: matplotlib Figures (stored as SVG), SVG text/bytes or PNG bytes.

        Names default to ``figure_<id>_<n>``; a name already in use gets a
        ``-1``, ``-2``, ... suffix unless ``overwrite``.  Returns the name(s)
        used: a str for one figure, a list for a list.

        >>> exp.add_figures(fig, figure_names="hist")
        'hist'
        """
        return self._artifacts.add_figures(figures, figure_names, overwrite)

    def figure(self, key: str | int) -> FigureData:
        """A figure by name or position: ``.data`` (bytes), ``.format`` ("svg"/"png")."""
        return self._artifacts.figure(key)

    def delete_figure(self, key: str | int) -> str:
        """Delete a figure by name or position; returns its name."""
        return self._artifacts.delete_figure(key)

    # -- status ----------------------------------------------------------------------------
    def status(self) -> ExperimentStatus:
        """The experiment's status (see :class:`ExperimentStatus`); errors come first.

        EMPTY without any data, job, callback, result or figure; otherwise ERROR
        or CANCELLED if any job or callback ended so; the job state while jobs
        are unfinished; POST_PROCESSING while callbacks are queued or running;
        else DONE.  Every change is appended to :attr:`status_history`.
        """
        return self._note_status(ask=True)

    def _note_status(self, ask: bool) -> ExperimentStatus:
        """Compute the status and record a change; ``ask``: ask unfinished jobs first.

        Jobs and the data run are asked before taking the lock (remote calls,
        database reads); under it only recorded state is combined, so the
        history is appended in the order the statuses were computed.
        """
        if ask:
            self._jobs.refresh()
        has_rows = self._rows.has_rows()

        def compute() -> ExperimentStatus:
            empty = not (has_rows or self._children.ids() or self._jobs.has_jobs()
                         or self._analysis.has_callbacks() or self._artifacts.has_any())
            return experiment_status(empty, self._jobs.status(ask=False),
                                     self._analysis.status())

        return self._record.note(compute)

    def _on_change(self) -> None:
        """A part changed something: note the status, auto-save if asked to."""
        self._note_status(ask=False)
        self._persistence.changed(self.experiment_id)

    def errors(self) -> str:
        """All job and analysis errors ("" if none)."""
        return self.job_errors() + self.analysis_errors()

    def cancel(self) -> bool:
        """Cancel queued analysis, then unfinished jobs; True if everything stopped."""
        analysis = self.cancel_analysis()
        jobs = self.cancel_jobs()
        return analysis and jobs

    # -- lifetime --------------------------------------------------------------------------
    def close(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking work: wait for jobs and callbacks (if ``wait``, up to ``timeout`` s),
        then cancel callbacks still queued and refuse new jobs and callbacks.

        Data, results, figures and save() keep working.  Jobs already added are
        still collected (a backend job is never cancelled by close).  Closing is
        optional: worker threads end by themselves when the work is done.
        Children are closed too.
        """
        if wait:
            self.block_for_results(timeout)
        self._workers.close()
        self._analysis.cancel(reason="not run: the experiment was closed")
        for child in self.child_data():
            child.close(wait=wait, timeout=timeout)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._workers.closed

    def __enter__(self) -> ExperimentData:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(wait=exc_type is None)  # after an error, do not wait for the jobs

    def _refuse_if_closed(self, what: str) -> None:
        if self._workers.closed:
            raise ExperimentClosedError(
                f"experiment {self.experiment_id} was closed, so {what}() is refused; "
                "use exp.copy() or a new ExperimentData for more work")

    # -- children --------------------------------------------------------------------------
    def add_child_data(self, experiment_data: ExperimentData) -> None:
        """Attach a child experiment (its ``parent_id`` becomes this experiment's id)."""
        if not isinstance(experiment_data, ExperimentData):
            raise UnsupportedResultError(f"child data must be ExperimentData, "
                                         f"not {type(experiment_data).__name__}")
        experiment_data._record.parent_id = self.experiment_id
        self._children.add(experiment_data.experiment_id, experiment_data)
        self._on_change()

    def child_data(self, index: int | slice | str | None = None) -> Any:
        """Child experiments: all, by position, slice, or experiment id."""
        return self._children.get(index)

    # -- copy, save and load ---------------------------------------------------------------
    def copy(self, copy_results: bool = True) -> ExperimentData:
        """A copy with a new experiment id and a new data run.

        Data rows, job records (unfinished jobs are followed by the copy too),
        tags, notes and metadata are copied; with ``copy_results`` also the
        analysis results (new result ids), figures and children (copied
        recursively).  Analysis callbacks are not copied.  Do not call it from
        inside an analysis callback with ``copy_results=True``.
        """
        new = type(self)(store=self._store, backend=self.backend,
                         experiment_type=self.experiment_type, parent_id=self.parent_id,
                         tags=self.tags, notes=self.notes,
                         metadata=copy_module.deepcopy(self.metadata))
        new._backend.name = self._backend.name
        new._rows.add(self.data())
        new._jobs.adopt_records(self._jobs.twins())
        if copy_results:
            self._wait_for_analysis(None)
            results, figures = self._artifacts.copies()
            new._artifacts.restore(results, figures, saved=False)
            for child in self.child_data():
                new.add_child_data(child.copy(copy_results=True))
        new._note_status(ask=False)
        if self.auto_save:
            new.auto_save = True
        return new

    @property
    def auto_save(self) -> bool:
        """Save after every change when True (setting it to True saves at once).

        Edits of :attr:`metadata` in place are not noticed: call :meth:`save`.
        """
        return self._persistence.auto_save

    @auto_save.setter
    def auto_save(self, value: bool) -> None:
        value = bool(value)
        for child in self.child_data():
            child.auto_save = value
        if value and not self._persistence.auto_save:
            self.save()
        self._persistence.auto_save = value

    def save(self) -> None:
        """Write the experiment, job and callback records, analysis results, figures,
        status history and children (recursively) to the store, in one transaction each.

        The data rows are written by ``exp.dataset`` itself (flushed here, so a
        :meth:`load` in another process sees all of them).
        """
        self._jobs.refresh()  # remote calls: before the save lock, not under it
        self._persistence.save()

    def _prepare_save(self) -> None:
        for child in self.child_data():
            child.save()
        self._rows.flush()  # rows buffered by this process reach the database now

    def _snapshot(self) -> Snapshot:
        status = self._note_status(ask=False)
        jobs = self._jobs.records(ask=False)
        callbacks = self._analysis.records()
        results, figures, names = self._artifacts.for_save()
        record = self._record.row(status, self._backend.name, self._rows.dataset.id)
        history = self._record.history()
        children = self._children.ids()
        written = [figure["name"] for figure in figures]
        return Snapshot(record, jobs, callbacks, history, results, figures, names, children,
                        on_saved=lambda: self._artifacts.saved(written))

    @classmethod
    def load(cls, experiment_id: str, store: Store | None = None) -> ExperimentData:
        """The experiment saved under ``experiment_id`` (in this or another process).

        Data, analysis results, figures, children, tags, notes, metadata and
        the recorded job and callback statuses come back; job objects and
        backends do not (:attr:`backend_name` is kept).
        """
        store = persistence.store_or_default(store)
        stored = persistence.read(store, experiment_id)
        dataset = (store.read_dataset(stored["dataset_id"])
                   if stored["dataset_id"] is not None else None)
        exp = cls(store=store, experiment_type=stored["experiment_type"],
                  parent_id=stored["parent_id"], experiment_id=experiment_id,
                  tags=serialization.loads(stored["tags"]), notes=stored["notes"],
                  metadata=serialization.loads(stored["metadata"]), _dataset=dataset)
        exp._backend.name = stored["backend_name"]
        exp._record.restore(stored)
        exp._jobs.adopt_records(JobRecord.from_row(row) for row in stored["jobs"])
        exp._analysis.restore(stored["callbacks"])
        exp._artifacts.restore(
            [AnalysisResult.from_row(row) for row in stored["results"]],
            [FigureData(row["name"], row["format"], bytes(row["data"]), row["created_at"])
             for row in stored["figures"]], saved=True)
        children = [cls.load(child_id, store) for child_id in stored["children"]]
        for child in children:
            exp._children.add(child.experiment_id, child)
        return exp

    @staticmethod
    def find(store: Store | None = None, experiment_type: str | None = None,
             parent_id: str | None = None) -> list[str]:
        """Ids of saved experiments, newest first, optionally by type or parent."""
        return persistence.find(persistence.store_or_default(store), experiment_type, parent_id)

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [repr(self.experiment_type), self.experiment_id]
        if self.parent_id:
            parts.append(f"parent_id={self.parent_id}")
        for name in ("tags", "job_ids", "figure_names"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        return f"ExperimentData({', '.join(parts)})"

    def __str__(self) -> str:
        status = self.status()
        lines = ["-" * 51, f"Experiment: {self.experiment_type}",
                 f"Experiment ID: {self.experiment_id}"]
        if self.parent_id:
            lines.append(f"Parent ID: {self.parent_id}")
        if self._children.ids():
            lines.append(f"Child Experiment Data: {len(self._children.ids())}")
        lines.append(f"Status: {status.name}")
        if status is ExperimentStatus.ERROR:
            lines.append("  " + self.errors().strip().replace("\n", "\n  "))
        if self.backend_name:
            lines.append(f"Backend: {self.backend_name}")
        if self.tags:
            lines.append(f"Tags: {self.tags}")
        lines += [f"Data: {self._rows.length} rows (run {self._rows.dataset.id})",
                  f"Analysis Results: {len(self.analysis_results(block=False))}",
                  f"Figures: {len(self.figure_names)}"]
        return "\n".join(lines)
