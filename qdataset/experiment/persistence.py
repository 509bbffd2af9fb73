"""The experiment's own record, saving and reading it, and auto-save.

:class:`ExperimentRecord` holds what the experiment's ``experiments`` row
holds (type, parent, tags, notes, metadata, timestamps) and its status history.

:class:`Persistence` is owned by :class:`~qdataset.experiment.ExperimentData`.
It is given the experiment tables (an
:class:`~qdataset.store.experiments.ExperimentStorage`) and two functions:
``prepare`` (save the children, flush the data rows) and ``snapshot`` (the
experiment as a :class:`Snapshot`, taken under the parts' locks).  The data
rows themselves are written by the experiment's DataSet.

Locking: ``Persistence._lock`` serialises saves of one experiment, so an
older snapshot can never overwrite a newer one.  It is held across the
database write (never across a job's ``status()``: ``save()`` asks the jobs
before taking it), and no other operation takes it except auto-save, which
is itself a save.

>>> persistence = Persistence(ExperimentStorage(store), prepare, snapshot)
>>> persistence.save()
>>> persistence.read(experiment_id)["experiment_type"]
'bell'
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..store.experiments import ExperimentStorage
from . import serialization
from .errors import ExperimentDataError, ExperimentNotFoundError
from .status import ExperimentStatus

if TYPE_CHECKING:
    from ..store import Store

LOG = logging.getLogger("qdataset.experiment")


class ExperimentRecord:
    """An experiment's descriptive fields and status history.

    Its lock orders the status history: the status is computed under it
    (from recorded state only; see ``ExperimentData._note_status``), so
    entries are appended in the order they were computed.
    """

    def __init__(self, experiment_id: str, experiment_type: str | None,
                 parent_id: str | None, tags: Iterable[str], notes: str,
                 metadata: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self.experiment_id = experiment_id
        self.experiment_type = experiment_type
        self.parent_id = parent_id
        self._tags = _clean_tags(tags)
        self.notes = str(notes)
        self.metadata = metadata
        self.created_at = self.updated_at = time.time()
        self._history: list[tuple[str, float]] = []

    @property
    def tags(self) -> list[str]:
        with self._lock:
            return list(self._tags)

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        if not isinstance(tags, list | tuple):
            raise ExperimentDataError(
                f"tags must be a list of strings, got {type(tags).__name__}; "
                "e.g. exp.tags = ['calibration']")
        cleaned = _clean_tags(tags)
        with self._lock:
            self._tags = cleaned

    def note(self, compute: Callable[[], ExperimentStatus]) -> ExperimentStatus:
        """``compute()`` the status (memory only: it runs under the lock) and record a change."""
        with self._lock:
            status = compute()
            if not self._history or self._history[-1][0] != status.name:
                self._history.append((status.name, time.time()))
        return status

    def history(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self._history)

    def row(self, status: ExperimentStatus, backend_name: str | None,
            dataset_id: str) -> dict[str, Any]:
        """The ``experiments`` row for a save now (``updated_at`` becomes now)."""
        with self._lock:
            self.updated_at = time.time()
            return {
                "experiment_id": self.experiment_id,
                "experiment_type": self.experiment_type,
                "parent_id": self.parent_id,
                "backend_name": backend_name,
                "dataset_id": dataset_id,
                "tags": serialization.dumps(self._tags),
                "notes": self.notes,
                "metadata": serialization.dumps(self.metadata),
                "status": status.name,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }

    def restore(self, stored: dict[str, Any]) -> None:
        """Timestamps and status history of a loaded experiment."""
        with self._lock:
            self.created_at = stored["created_at"]
            self.updated_at = stored["updated_at"]
            self._history = [(name, at) for name, at in stored["history"]]


def _clean_tags(tags: Iterable[str]) -> list[str]:
    return sorted({str(tag) for tag in tags})


@dataclasses.dataclass
class Snapshot:
    """Everything one save writes (rows as :class:`ExperimentStorage` takes them)."""

    record: dict[str, Any]
    jobs: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]
    history: list[tuple[str, float]]
    results: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    figure_names: list[str]
    children: list[str]
    #: Called once the snapshot is in the database (e.g. figures are saved now).
    on_saved: Callable[[], None] = lambda: None


class Persistence:
    """save() and auto-save of one experiment; reading saved ones."""

    def __init__(self, storage: ExperimentStorage, prepare: Callable[[], None],
                 snapshot: Callable[[], Snapshot]) -> None:
        self._records = storage
        self._prepare = prepare
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self.auto_save = False

    def save(self) -> None:
        """Write the snapshot in one transaction (after ``prepare``)."""
        with self._lock:
            self._prepare()
            snap = self._snapshot()
            self._records.save(snap.record, jobs=snap.jobs, callbacks=snap.callbacks,
                               history=snap.history, results=snap.results,
                               figures=snap.figures, figure_names=snap.figure_names,
                               children=snap.children)
            snap.on_saved()

    def changed(self, experiment_id: str) -> None:
        """Something changed: save if auto-save is on (a failure is logged, not raised)."""
        if not self.auto_save:
            return
        try:
            self.save()
        except Exception:  # noqa: BLE001 - a failed auto-save must not break the caller
            LOG.exception("auto-save of experiment %s failed", experiment_id)


def read(store: Store, experiment_id: str) -> dict[str, Any]:
    """The stored records of ``experiment_id``; :class:`ExperimentNotFoundError` if none."""
    stored = ExperimentStorage(store).load(experiment_id)
    if stored is None:
        raise ExperimentNotFoundError(
            f"no experiment {experiment_id!r} in {store!r}; check the id, or list the "
            "saved ones with ExperimentData.find(store); was save() called?")
    return stored


def find(store: Store, experiment_type: str | None = None,
         parent_id: str | None = None) -> list[str]:
    """Ids of saved experiments, newest first, optionally by type or parent."""
    rows = ExperimentStorage(store).list_experiments(experiment_type, parent_id)
    return [row["experiment_id"] for row in rows]


def store_or_default(store: Store | None) -> Store:
    """``store``, or the process-wide default store if None."""
    if store is not None:
        return store
    from ..store import default_store

    return default_store()
