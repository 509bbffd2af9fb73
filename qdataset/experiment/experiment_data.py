"""ExperimentData: qiskit jobs, their data, analysis, results and figures, in one database.

The behaviour follows qiskit-experiments' ExperimentData, but everything is
stored in a qdataset store instead of a remote service: the measured data are
the rows of an ordinary run (``exp.dataset``), and experiment records, job
records, analysis results, figures and child links live in the experiment
tables (see :mod:`qdataset.store.experiments`).

This module holds the state, the descriptive fields, data rows, status and
children; the rest comes from one base class per job: jobs in
:mod:`.job_runner`, analysis callbacks in :mod:`.analysis_runner`, analysis
results and figures in :mod:`.artifacts`, save/load/copy in :mod:`.persistence`.

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

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..store.experiments import ExperimentStorage
from . import jobs as job_tools
from . import rows as row_layout
from .analysis_runner import AnalysisRunner, Callback
from .artifacts import Artifacts
from .errors import ExperimentDataError, ExperimentEntryNotFound
from .figures import FigureData
from .job_runner import JobRecord, JobRunner
from .persistence import Persistence
from .results import AnalysisResult
from .status import ExperimentStatus, experiment_status

if TYPE_CHECKING:
    from ..dataset import DataSet
    from ..store import Store


class ExperimentData(JobRunner, AnalysisRunner, Artifacts, Persistence):
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
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._callbacks: OrderedDict[str, Callback] = OrderedDict()
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

    # -- status --------------------------------------------------------------------------------
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

    def errors(self) -> str:
        """All job and analysis errors ("" if none)."""
        return self.job_errors() + self.analysis_errors()

    def cancel(self) -> bool:
        """Cancel queued analysis, then unfinished jobs; True if everything stopped."""
        analysis = self.cancel_analysis()
        jobs = self.cancel_jobs()
        return analysis and jobs

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
