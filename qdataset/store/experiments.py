"""SQL of the experiment layer: experiment records, jobs, callbacks, results, figures.

:class:`ExperimentStorage` is what :mod:`qdataset.experiment` calls; it knows
nothing about qiskit.  Records go in and come out as plain dicts keyed by
column name (JSON columns already encoded as text by the caller).  Every save
is one write transaction, so a reader never sees half of an experiment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .experiment_schema import (
    analysis_results,
    experiment_callbacks,
    experiment_children,
    experiment_figures,
    experiment_jobs,
    experiment_status_history,
    experiments,
)

if TYPE_CHECKING:
    from .store import Store

#: Child tables replaced wholesale on every save (small rows).
_REPLACED = (experiment_jobs, experiment_callbacks, experiment_status_history)


class ExperimentStorage:
    """All SQL about experiments, for one store.

    >>> storage = ExperimentStorage(store)
    >>> storage.exists("5f0c...")
    False
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.engine = store.engine
        self._transaction = store.transaction
        self._reading = store.reading

    # -- writes ------------------------------------------------------------------
    def save(
        self,
        record: Mapping[str, Any],
        *,
        jobs: Sequence[Mapping[str, Any]] = (),
        callbacks: Sequence[Mapping[str, Any]] = (),
        history: Sequence[tuple[str, float]] = (),
        results: Sequence[Mapping[str, Any]] = (),
        figures: Sequence[Mapping[str, Any]] = (),
        figure_names: Sequence[str] | None = None,
        children: Sequence[str] = (),
    ) -> None:
        """Insert or update one experiment and everything attached to it, atomically.

        ``record`` holds the ``experiments`` columns.  Jobs, callbacks, status
        history, analysis results and children are replaced by the given lists.
        ``figures`` are inserted or replaced by name; ``figure_names`` (all the
        names the experiment has now, in order) lets figures not listed be
        deleted and the others re-ordered without rewriting their bytes.
        """
        eid = record["experiment_id"]
        row = dict(record)
        row.setdefault("updated_at", time.time())
        with self._transaction() as conn:
            exists = conn.execute(
                sa.select(experiments.c.experiment_id).where(experiments.c.experiment_id == eid)
            ).first()
            if exists:
                update = {k: v for k, v in row.items() if k not in ("experiment_id", "created_at")}
                conn.execute(experiments.update()
                             .where(experiments.c.experiment_id == eid).values(**update))
            else:
                conn.execute(experiments.insert().values(**row))
            for table in _REPLACED:
                conn.execute(table.delete().where(table.c.experiment_id == eid))
            if jobs:
                conn.execute(experiment_jobs.insert(),
                             [{**job, "experiment_id": eid, "position": i}
                              for i, job in enumerate(jobs)])
            if callbacks:
                conn.execute(experiment_callbacks.insert(),
                             [{**cb, "experiment_id": eid, "position": i}
                              for i, cb in enumerate(callbacks)])
            if history:
                conn.execute(experiment_status_history.insert(),
                             [{"experiment_id": eid, "seq": i, "status": s, "at": at}
                              for i, (s, at) in enumerate(history)])
            conn.execute(analysis_results.delete()
                         .where(analysis_results.c.experiment_id == eid))
            if results:
                conn.execute(analysis_results.insert(),
                             [{**res, "experiment_id": eid, "position": i}
                              for i, res in enumerate(results)])
            self._save_figures(conn, eid, figures, figure_names)
            conn.execute(experiment_children.delete()
                         .where(experiment_children.c.parent_id == eid))
            if children:
                conn.execute(experiment_children.insert(),
                             [{"parent_id": eid, "child_id": cid, "position": i}
                              for i, cid in enumerate(children)])

    @staticmethod
    def _save_figures(conn: sa.Connection, eid: str, figures: Iterable[Mapping[str, Any]],
                      names: Sequence[str] | None) -> None:
        table = experiment_figures
        mine = table.c.experiment_id == eid
        stored = {r.name for r in conn.execute(sa.select(table.c.name).where(mine))}
        for fig in figures:
            values = {k: fig[k] for k in ("format", "data", "created_at")}
            values["position"] = fig.get("position", 0)
            if fig["name"] in stored:
                conn.execute(table.update().where(mine, table.c.name == fig["name"])
                             .values(**values))
            else:
                conn.execute(table.insert().values(experiment_id=eid, name=fig["name"],
                                                   **values))
                stored.add(fig["name"])
        if names is None:
            return
        gone = stored - set(names)
        if gone:
            conn.execute(table.delete().where(mine, table.c.name.in_(sorted(gone))))
        for position, name in enumerate(names):
            if name in stored:
                conn.execute(table.update().where(mine, table.c.name == name)
                             .values(position=position))

    def delete(self, experiment_id: str) -> None:
        """Delete an experiment's records (not its run, not its children)."""
        with self._transaction() as conn:
            for table in (*_REPLACED, analysis_results, experiment_figures):
                conn.execute(table.delete().where(table.c.experiment_id == experiment_id))
            conn.execute(experiment_children.delete()
                         .where(experiment_children.c.parent_id == experiment_id))
            conn.execute(experiments.delete()
                         .where(experiments.c.experiment_id == experiment_id))

    # -- reads -------------------------------------------------------------------
    def exists(self, experiment_id: str) -> bool:
        with self._reading() as conn:
            return conn.execute(
                sa.select(experiments.c.experiment_id)
                .where(experiments.c.experiment_id == experiment_id)
            ).first() is not None

    def load(self, experiment_id: str) -> dict[str, Any] | None:
        """Everything stored about one experiment, or None if it does not exist.

        Keys: the ``experiments`` columns, plus ``jobs``, ``callbacks``,
        ``history`` (list of (status, time)), ``results``, ``figures`` (with
        bytes) and ``children`` (child ids), each in saved order.
        """
        with self._reading() as conn:
            row = conn.execute(
                sa.select(experiments).where(experiments.c.experiment_id == experiment_id)
            ).mappings().first()
            if row is None:
                return None
            out = dict(row)

            def rows(table: sa.Table, order: sa.Column, key: sa.Column) -> list[dict[str, Any]]:
                query = sa.select(table).where(key == experiment_id).order_by(order)
                return [dict(r) for r in conn.execute(query).mappings()]

            out["jobs"] = rows(experiment_jobs, experiment_jobs.c.position,
                               experiment_jobs.c.experiment_id)
            out["callbacks"] = rows(experiment_callbacks, experiment_callbacks.c.position,
                                    experiment_callbacks.c.experiment_id)
            out["history"] = [(r["status"], r["at"]) for r in rows(
                experiment_status_history, experiment_status_history.c.seq,
                experiment_status_history.c.experiment_id)]
            out["results"] = rows(analysis_results, analysis_results.c.position,
                                  analysis_results.c.experiment_id)
            out["figures"] = rows(experiment_figures, experiment_figures.c.position,
                                  experiment_figures.c.experiment_id)
            out["children"] = [r["child_id"] for r in rows(
                experiment_children, experiment_children.c.position,
                experiment_children.c.parent_id)]
        return out

    def list_experiments(self, experiment_type: str | None = None,
                         parent_id: str | None = None) -> list[dict[str, Any]]:
        """Experiment records (no jobs, results or figures), newest first."""
        query = sa.select(experiments).order_by(experiments.c.created_at.desc())
        if experiment_type is not None:
            query = query.where(experiments.c.experiment_type == experiment_type)
        if parent_id is not None:
            query = query.where(experiments.c.parent_id == parent_id)
        with self._reading() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
