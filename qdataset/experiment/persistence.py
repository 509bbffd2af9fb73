"""Saving, loading, finding and copying experiments.

:class:`Persistence` is a base class of :class:`~qdataset.experiment.ExperimentData`:
the records go to the experiment tables through
:class:`~qdataset.store.experiments.ExperimentStorage`; the data rows are
written by the experiment's DataSet.
"""

from __future__ import annotations

import copy as copy_module
import logging
import time
from concurrent import futures
from typing import TYPE_CHECKING

from ..store.experiments import ExperimentStorage
from . import serialization
from .analysis_runner import Callback
from .errors import ExperimentNotFoundError
from .figures import FigureData
from .job_runner import JobRecord
from .results import AnalysisResult
from .status import AnalysisStatus, JobStatus
from .workers import resolve, submit

if TYPE_CHECKING:
    from ..store import Store
    from .experiment_data import ExperimentData

LOG = logging.getLogger("qdataset.experiment")


class Persistence:
    """save(), load(), find(), copy() and auto-save."""

    # -- copy ----------------------------------------------------------------------------------
    def copy(self, copy_results: bool = True) -> ExperimentData:
        """A copy with a new experiment id and a new data run.

        Data rows, job records (unfinished jobs are followed by the copy too),
        tags, notes and metadata are copied; with ``copy_results`` also the
        analysis results (new result ids), figures and children (copied
        recursively).  Analysis callbacks are not copied.  Do not call it from
        inside an analysis callback with ``copy_results=True``.
        """
        new = type(self)(store=self._store, backend=self._backend,
                         experiment_type=self._experiment_type, parent_id=self._parent_id,
                         tags=self._tags, notes=self._notes,
                         metadata=copy_module.deepcopy(self._metadata))
        new._backend_name = self._backend_name
        with self._lock:
            new._add_rows(self.data())
            for job_id, record in self._jobs.items():
                twin = JobRecord(job_id, record.job, record.backend_name, record.kind,
                                 record.submitted_at, record.status)
                new._jobs[job_id] = twin
                if record.final or record.job is None:
                    twin.finished_at = record.finished_at
                    twin.error_message = record.error_message
                    resolve(twin.outcome, record.status is JobStatus.DONE)
                    twin.acknowledged = record.acknowledged
                else:
                    submit("job", new._collect, twin)
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

    # -- save and load -----------------------------------------------------------------------------
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
            record = JobRecord(row["job_id"], None, row["backend_name"], row["kind"] or "",
                               row["submitted_at"], JobStatus[row["status"]])
            record.finished_at = row["finished_at"]
            record.error_message = row["error_message"]
            resolve(record.outcome, record.status is JobStatus.DONE)
            record.acknowledged = True
            exp._jobs[record.job_id] = record
        for row in stored["callbacks"]:
            callback = Callback(row["name"], row["callback_id"], AnalysisStatus[row["status"]])
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
