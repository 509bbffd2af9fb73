"""SQL of the experiment service: records in and out as plain dicts, no qiskit.

:class:`ServiceStorage` is what :mod:`qdataset.experiment.service` calls.  The
caller encodes JSON columns to text; this module only stores and finds rows.
Every write is one transaction and an ``INSERT ... ON CONFLICT DO UPDATE`` on
the row's id, so the same call may be repeated (qiskit-experiments re-sends
everything on each save) and concurrent callers (analysis worker threads,
other processes) never collide on a missing-then-inserted row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .dialect import Dialect
from .service_schema import (
    qe_analysis_results,
    qe_experiments,
    qe_figures,
    qe_files,
    qe_job_results,
)

if TYPE_CHECKING:
    from .store import Store

Row = dict[str, Any]

def _upsert(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any],
            keys: Sequence[str], *, keep: Iterable[str] = (),
            fill: Iterable[str] = ()) -> None:
    """Insert ``row`` or update the row with the same ``keys``.

    ``keep``: columns an update leaves alone (first-save facts); ``fill``:
    columns an update sets only where the new value is not NULL.
    """
    statement = Dialect.of(conn.engine).upsert_insert(table).values(**row)
    skip = set(keys) | set(keep)
    fill = set(fill)
    changes = {
        name: (sa.func.coalesce(statement.excluded[name], table.c[name]) if name in fill
               else statement.excluded[name])
        for name in row if name not in skip
    }
    if changes:
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement)


def _filtered(query: sa.Select, table: sa.Table, equal: Mapping[str, Any],
              since: float | None, until: float | None) -> sa.Select:
    """``query`` with ``column == value`` for each given value (None: no filter) and
    ``since <= created_at <= until``."""
    for name, value in equal.items():
        if value is not None:
            query = query.where(table.c[name] == value)
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at <= until)
    return query


class ServiceStorage:
    """All SQL of the experiment service, for one store.

    >>> storage = ServiceStorage(store)
    >>> storage.experiment("5f0c...") is None
    True
    """

    def __init__(self, store: Store) -> None:
        self._transaction = store.transaction
        self._reading = store.reading

    # -- experiments ---------------------------------------------------------------
    def put_experiment(self, row: Mapping[str, Any], *, fill: Iterable[str] = ()) -> Row:
        """Insert or update one experiment; returns the stored row.

        ``created_at`` and ``creation_datetime`` keep their first-save values;
        ``fill`` columns are only overwritten by values that are not None.
        """
        eid = row["experiment_id"]
        with self._transaction() as conn:
            _upsert(conn, qe_experiments, row, ["experiment_id"],
                    keep=("created_at", "creation_datetime"), fill=fill)
            stored = conn.execute(sa.select(qe_experiments)
                                  .where(qe_experiments.c.experiment_id == eid)).mappings().one()
        return dict(stored)

    def _row(self, table: sa.Table, key: str, value: str) -> Row | None:
        """The row of ``table`` whose ``key`` column is ``value`` (None: none)."""
        with self._reading() as conn:
            row = conn.execute(sa.select(table).where(table.c[key] == value)).mappings().first()
        return None if row is None else dict(row)

    def experiment(self, experiment_id: str) -> Row | None:
        return self._row(qe_experiments, "experiment_id", experiment_id)

    def experiments(self, *, experiment_type: str | None = None,
                    backend: str | None = None, parent_id: str | None = None,
                    since: float | None = None, until: float | None = None) -> list[Row]:
        """Experiment rows, newest first, filtered in SQL."""
        table = qe_experiments
        query = _filtered(
            sa.select(table).order_by(table.c.created_at.desc(), table.c.pk.desc()), table,
            {"experiment_type": experiment_type, "backend": backend, "parent_id": parent_id},
            since, until)
        with self._reading() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def delete_experiment(self, experiment_id: str) -> bool:
        """Delete an experiment, its results, figures, files and the job results
        saved with it; False if there was no such experiment."""
        with self._transaction() as conn:
            for table in (qe_analysis_results, qe_figures, qe_files, qe_job_results):
                conn.execute(table.delete().where(table.c.experiment_id == experiment_id))
            gone = conn.execute(qe_experiments.delete()
                                .where(qe_experiments.c.experiment_id == experiment_id))
        return gone.rowcount > 0

    def existing_experiments(self, experiment_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(experiment_ids))
        if not ids:
            return set()
        with self._reading() as conn:
            return set(conn.execute(sa.select(qe_experiments.c.experiment_id)
                                    .where(qe_experiments.c.experiment_id.in_(ids))).scalars())

    # -- analysis results ------------------------------------------------------------
    def put_results(self, rows: Sequence[Mapping[str, Any]], *,
                    fill: Iterable[str] = ()) -> None:
        """Insert or update analysis results in one transaction (experiments must exist)."""
        fill = tuple(fill)
        with self._transaction() as conn:
            for row in rows:
                _upsert(conn, qe_analysis_results, row, ["result_id"],
                        keep=("experiment_id", "created_at"), fill=fill)

    def result(self, result_id: str) -> Row | None:
        return self._row(qe_analysis_results, "result_id", result_id)

    def results(self, *, experiment_id: str | None = None, backend_name: str | None = None,
                result_type: str | None = None, qualities: Sequence[str] | None = None,
                verified: bool | None = None, since: float | None = None,
                until: float | None = None) -> list[Row]:
        """Analysis result rows in the order first saved, filtered in SQL."""
        table = qe_analysis_results
        query = _filtered(
            sa.select(table).order_by(table.c.pk), table,
            {"experiment_id": experiment_id, "backend_name": backend_name,
             "result_type": result_type, "verified": verified}, since, until)
        if qualities is not None:
            query = query.where(table.c.quality.in_(list(qualities)))
        with self._reading() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def delete_result(self, result_id: str) -> bool:
        with self._transaction() as conn:
            gone = conn.execute(qe_analysis_results.delete()
                                .where(qe_analysis_results.c.result_id == result_id))
        return gone.rowcount > 0

    # -- figures and files (same shape: named blobs of one experiment) ---------------
    def put_blob(self, kind: str, experiment_id: str, name: str, data: bytes) -> None:
        with self._transaction() as conn:
            _upsert(conn, _BLOBS[kind], {"experiment_id": experiment_id, "name": name,
                                         "data": data, "updated_at": time.time()},
                    ["experiment_id", "name"])

    def blob(self, kind: str, experiment_id: str, name: str) -> bytes | None:
        table = _BLOBS[kind]
        with self._reading() as conn:
            data = conn.execute(sa.select(table.c.data).where(
                table.c.experiment_id == experiment_id, table.c.name == name)).scalar()
        return None if data is None else bytes(data)

    def has_blob(self, kind: str, experiment_id: str, name: str) -> bool:
        table = _BLOBS[kind]
        with self._reading() as conn:
            return conn.execute(sa.select(table.c.pk).where(
                table.c.experiment_id == experiment_id, table.c.name == name)).first() is not None

    def blob_list(self, kind: str, experiment_id: str) -> list[tuple[str, int, float]]:
        """(name, size in bytes, last modified) of an experiment's blobs, in saved order."""
        table = _BLOBS[kind]
        query = (sa.select(table.c.name, sa.func.length(table.c.data), table.c.updated_at)
                 .where(table.c.experiment_id == experiment_id).order_by(table.c.pk))
        with self._reading() as conn:
            return [(name, int(size), float(at)) for name, size, at in conn.execute(query)]

    def delete_blob(self, kind: str, experiment_id: str, name: str) -> bool:
        table = _BLOBS[kind]
        with self._transaction() as conn:
            gone = conn.execute(table.delete().where(table.c.experiment_id == experiment_id,
                                                     table.c.name == name))
        return gone.rowcount > 0

    # -- job results -----------------------------------------------------------------
    def put_job_results(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._transaction() as conn:
            for row in rows:
                _upsert(conn, qe_job_results, {**row, "saved_at": time.time()}, ["job_id"])

    def job_result(self, job_id: str) -> Row | None:
        return self._row(qe_job_results, "job_id", job_id)

    def job_ids(self, experiment_id: str | None = None) -> list[str]:
        query = sa.select(qe_job_results.c.job_id).order_by(qe_job_results.c.pk)
        if experiment_id is not None:
            query = query.where(qe_job_results.c.experiment_id == experiment_id)
        with self._reading() as conn:
            return list(conn.execute(query).scalars())


_BLOBS = {"figure": qe_figures, "file": qe_files}
