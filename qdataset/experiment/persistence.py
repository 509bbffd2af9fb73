"""Saving and reading experiment records, and auto-save.

:class:`Persistence` is owned by :class:`~qdataset.experiment.ExperimentData`.
It is given the experiment tables (an
:class:`~qdataset.store.experiments.ExperimentStorage`) and two functions:
``prepare`` (save the children, flush the data rows) and ``snapshot`` (the
experiment as a :class:`Snapshot`, taken under the parts' locks).  The data
rows themselves are written by the experiment's DataSet.

Locking: ``Persistence._lock`` serialises saves of one experiment, so an
older snapshot can never overwrite a newer one; it is held across the
database write, but no other operation of the experiment takes it (only
auto-save, which is itself a save).

>>> persistence = Persistence(ExperimentStorage(store), prepare, snapshot)
>>> persistence.save()
>>> persistence.read(experiment_id)["experiment_type"]
'bell'
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..store.experiments import ExperimentStorage
from .errors import ExperimentNotFoundError

if TYPE_CHECKING:
    from ..store import Store

LOG = logging.getLogger("qdataset.experiment")


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
        self._storage = storage
        self._prepare = prepare
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self.auto_save = False

    def save(self) -> None:
        """Write the snapshot in one transaction (after ``prepare``)."""
        with self._lock:
            self._prepare()
            snap = self._snapshot()
            self._storage.save(snap.record, jobs=snap.jobs, callbacks=snap.callbacks,
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
