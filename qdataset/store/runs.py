"""SQL on runs: the runs table, parameters, metadata and results.

:class:`RunStorage` is the only code that reads or writes results.  A run's
results are the rows ``_qd_run = <pk>`` of its shared results table
(layouts.py), each parameter in the column its parameter record names.
Writes go through ``engine.begin()`` (on SQLite a ``BEGIN IMMEDIATE``
transaction); the hot paths hand rows to ``Dialect.insert_many`` (SQLite:
multi-row INSERTs; PostgreSQL: COPY, binary for plain numbers).  Reads use
AUTOCOMMIT connections so they never hold a lock, and select ranges of the
primary key ``(_qd_run, _qd_index)`` (never OFFSET), chunk by chunk.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..errors import (
    AmbiguousRunError,
    InvalidArgumentError,
    RunExistsError,
    RunNotFoundError,
)
from ..paramspec import ParamSpec
from . import layouts, ownership
from .boundary import translating
from .codec import ColumnCodec, as_list, columns_of
from .dialect import INDEX_COLUMN, RUN_COLUMN, Dialect
from .reader import CHUNK_ROWS, read_arrays
from .schema import run_metadata, run_params, runs
from .writers import WriterInfo, hold, let_go, new_token, this_host

#: Longest experiment or sample name, in characters (indexed on every engine).
MAX_GROUP_LENGTH = 255

#: How many matching ids an ambiguous prefix lists.
_LISTED_MATCHES = 10


@dataclass(frozen=True)
class RunRow:
    """A run as stored in the ``runs`` table."""

    pk: int
    run_id: str
    name: str
    created_at: float
    completed_at: float | None
    length: int
    table: str
    #: parameter name -> its column in ``table`` (kept current as parameters are added)
    columns: dict[str, str]
    #: The writer lease token this handle presents with every write (None: a view).
    token: str | None = None
    #: The writer the run recorded when read (None when not read).
    writer: WriterInfo | None = None
    #: Per-store run number, and the run's groups (migration 0008).
    number: int | None = None
    experiment: str | None = None
    sample: str | None = None


class RunStorage:
    """All SQL about runs, for one engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = Dialect.of(engine)

    # -- connections ---------------------------------------------------------
    @contextmanager
    def reading(self, run_id: str | None = None) -> Iterator[sa.Connection]:
        """A connection for reads: no transaction, no lock held."""
        with translating(self.engine.url, run_id):
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                yield conn

    @contextmanager
    def writing(self, run_id: str | None = None) -> Iterator[sa.Connection]:
        """A write transaction.  Database errors leave as qdataset errors (see
        :mod:`.boundary`): a completion-lock violation as CompletedError."""
        with translating(self.engine.url, run_id):
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _lease_transaction(self) -> Iterator[sa.Connection]:
        """A write transaction for lease bookkeeping, tagged with the execution option
        ``qdataset_lease`` (so tests that inject faults into writes can tell it apart)."""
        with translating(self.engine.url):
            with self.engine.connect().execution_options(qdataset_lease=True) as conn:
                with conn.begin():
                    yield conn

    # -- runs ----------------------------------------------------------------
    def create_run(
        self, run_id: str, name: str, created_at: float, specs: Sequence[ParamSpec],
        token: str | None = None, expires_at: float | None = None, *,
        experiment: str | None = None, sample: str | None = None,
        number: int | None = None,
    ) -> RunRow:
        """Insert the run and its parameters and place it in a results table, atomically.

        The creating process becomes the run's writer, presenting ``token`` (a
        new one if not given) with every write; its lease runs until
        ``expires_at`` unless renewed.  The run gets the store's next number, or
        ``number`` if given and free (see :meth:`_number_for`).  Limits are checked
        first: a run the engine could not store is never created."""
        token = token or new_token()
        self.dialect.check_run_layout(specs, run_id)
        for label, group in (("experiment", experiment), ("sample", sample)):
            if group is not None and len(group) > MAX_GROUP_LENGTH:
                raise InvalidArgumentError(
                    f"run {run_id!r}: {label} name {group[:40]!r}... has {len(group)} "
                    f"characters; at most {MAX_GROUP_LENGTH} (it is indexed): shorten it")
        with self.writing(run_id) as conn:
            exists = conn.execute(sa.select(runs.c.pk).where(runs.c.run_id == run_id)).first()
            if exists:
                raise RunExistsError(
                    f"a run with id {run_id!r} already exists in this store; "
                    "read it with store.read_dataset(id) instead of writing it again"
                )
            placement = layouts.place_run(conn, self.dialect, specs)
            number = self._number_for(conn, number)
            pk = conn.execute(
                runs.insert().values(run_id=run_id, name=name, created_at=created_at,
                                     number=number, experiment=experiment, sample=sample,
                                     length=0, results_table=placement.table,
                                     writer_host=this_host(), writer_pid=os.getpid(),
                                     writer_token=token, writer_started_at=created_at,
                                     writer_expires_at=expires_at)
            ).inserted_primary_key[0]
            self._insert_params(conn, pk, specs, placement.columns, first_position=0)
        columns = {s.name: c for s, c in zip(specs, placement.columns, strict=True)}
        return RunRow(pk, run_id, name, created_at, None, 0, placement.table, columns, token,
                      number=number, experiment=experiment, sample=sample)

    def _number_for(self, conn: sa.Connection, wanted: int | None) -> int:
        """The number of a run being created in ``conn``'s transaction: ``wanted`` if
        no run has it, else one more than the highest number in the store.

        Creators are serialised until commit (SQLite: ``BEGIN IMMEDIATE``;
        PostgreSQL: the layout advisory lock), so two never take the same number;
        the unique index ``ux_runs_number`` guards it anyway."""
        self.dialect.lock_layouts(conn)
        if wanted is not None:
            taken = conn.execute(sa.select(runs.c.pk).where(runs.c.number == wanted)).first()
            if taken is None:
                return int(wanted)
        highest = conn.execute(sa.select(sa.func.max(runs.c.number))).scalar()
        return int(highest or 0) + 1

    def _insert_params(self, conn: sa.Connection, pk: int, specs: Sequence[ParamSpec],
                       columns: Sequence[str], first_position: int) -> None:
        if specs:
            conn.execute(run_params.insert(), [
                {"run_pk": pk, "position": first_position + offset, "name": spec.name,
                 "spec": spec.to_json(), "column_name": column}
                for offset, (spec, column) in enumerate(zip(specs, columns, strict=True))])

    def get_run(self, run_id: str | int) -> RunRow:
        """The run with id ``run_id``, or (an int) with that number."""
        if isinstance(run_id, int):
            return self._get_run(runs.c.number == run_id, f"number {run_id}")
        return self._get_run(runs.c.run_id == run_id, f"id {run_id!r}")

    def find_run(self, key: str | int) -> RunRow:
        """The run a user means by ``key``: a number (int), an id, or an id prefix
        that only one run's id starts with (AmbiguousRunError lists the matches).

        Prefixes are matched with ``substr`` on the runs table (exact and
        case-sensitive on every engine; no results are touched)."""
        if isinstance(key, int) and not isinstance(key, bool):
            return self.get_run(key)
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(
                f"a run is given by its number (int), its id or a unique id prefix (str), "
                f"not {key!r}")
        with self.reading() as conn:
            exact = conn.execute(sa.select(runs.c.run_id)
                                 .where(runs.c.run_id == key)).first()
            matches = [] if exact else conn.execute(
                sa.select(runs.c.run_id)
                .where(sa.func.substr(runs.c.run_id, 1, len(key)) == key)
                .order_by(runs.c.run_id).limit(_LISTED_MATCHES + 1)).scalars().all()
        if exact or len(matches) == 1:
            return self.get_run(key if exact else matches[0])
        if not matches:
            raise RunNotFoundError(
                f"no run with id {key!r} in {self.engine.url!r}, nor one whose id starts "
                "with it; list the runs with store.runs() (or `qdataset runs`)")
        listed = ", ".join(matches[:_LISTED_MATCHES])
        more = " and more" if len(matches) > _LISTED_MATCHES else ""
        raise AmbiguousRunError(
            f"{key!r} is the start of the ids of several runs: {listed}{more}; give more "
            "of the id, or the run's number")

    def _get_run(self, where: sa.ColumnElement[bool], what: str) -> RunRow:
        with self.reading() as conn:
            row = conn.execute(sa.select(runs).where(where)).first()
            if row is None:
                raise RunNotFoundError(
                    f"no run with {what} in {self.engine.url!r}; "
                    "list the runs with store.runs()"
                )
            columns = dict(conn.execute(
                sa.select(run_params.c.name, run_params.c.column_name)
                .where(run_params.c.run_pk == row.pk)).all())
        return _run_row(row, columns)

    def list_runs(self, name: str | None = None, completed: bool | None = None, *,
                  experiment: str | None = None, sample: str | None = None,
                  since: float | None = None, until: float | None = None,
                  metadata: dict[str, str] | None = None) -> list[RunRow]:
        """Runs, newest first, filtered in SQL (indexes: experiment, sample,
        created_at, metadata tag).  ``since <= created_at < until``; ``metadata``
        maps tags to the JSON text their value must equal."""
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.pk.desc())
        if name is not None:
            query = query.where(runs.c.name == name)
        if completed is True:
            query = query.where(runs.c.completed_at.is_not(None))
        elif completed is False:
            query = query.where(runs.c.completed_at.is_(None))
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        if sample is not None:
            query = query.where(runs.c.sample == sample)
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        if until is not None:
            query = query.where(runs.c.created_at < until)
        for tag, value_json in (metadata or {}).items():
            query = query.where(runs.c.pk.in_(
                sa.select(run_metadata.c.run_pk)
                .where(run_metadata.c.tag == tag, run_metadata.c.value == value_json)))
        with self.reading() as conn:
            return [_run_row(row, {}) for row in conn.execute(query)]

    def runs_fingerprint(self, tag: str) -> tuple[Any, ...]:
        """One cheap aggregate read that changes whenever :meth:`list_runs` would
        list something new: runs added or removed, rows added, runs completed,
        leases taken or given up, runs tagged ``tag`` (lease renewals leave it)."""
        tagged = (sa.select(sa.func.count()).where(run_metadata.c.tag == tag)
                  .scalar_subquery())
        with self.reading() as conn:
            return tuple(conn.execute(sa.select(
                sa.func.count(), sa.func.max(runs.c.pk), sa.func.sum(runs.c.length),
                sa.func.count(runs.c.completed_at), sa.func.count(runs.c.writer_token),
                sa.func.max(runs.c.writer_started_at), tagged)).one())

    def runs_tagged(self, tag: str, among: Collection[int] | None = None) -> set[int]:
        """Keys of the runs (of ``among``, if given) that carry metadata under ``tag``."""
        query = sa.select(run_metadata.c.run_pk).where(run_metadata.c.tag == tag)
        if among is not None:
            query = query.where(run_metadata.c.run_pk.in_(among))
        with self.reading() as conn:
            return set(conn.execute(query).scalars())

    def run_state(self, pk: int, run_id: str | None = None) -> tuple[int, float | None, int]:
        """(length, completed_at, parameter count) of a run, in one cheap read."""
        count = sa.select(sa.func.count()).where(run_params.c.run_pk == pk).scalar_subquery()
        with self.reading(run_id) as conn:
            row = conn.execute(
                sa.select(runs.c.length, runs.c.completed_at, count).where(runs.c.pk == pk)
            ).one()
        return int(row[0]), row[1], int(row[2])

    def run_states(self, pks: Sequence[int]) -> dict[int, tuple[int, bool]]:
        """(length, completed) of several runs in one indexed query."""
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(runs.c.pk, runs.c.length, runs.c.completed_at)
                .where(runs.c.pk.in_(list(pks)))
            )
            return {pk: (int(length), done is not None) for pk, length, done in rows}

    def load_specs(self, pk: int, run_id: str | None = None,
                   columns: dict[str, str] | None = None) -> list[ParamSpec]:
        """The run's parameters in order; ``columns`` (if given) is updated with
        their columns."""
        with self.reading(run_id) as conn:
            rows = conn.execute(
                sa.select(run_params.c.spec, run_params.c.name, run_params.c.column_name)
                .where(run_params.c.run_pk == pk)
                .order_by(run_params.c.position)
            ).all()
        if columns is not None:
            columns.update((name, column) for _, name, column in rows)
        return [ParamSpec.from_json(spec) for spec, _, _ in rows]

    def complete(self, run: RunRow, completed_at: float) -> float:
        """Complete the run and lock its results (idempotent); returns the completion
        time.  The writer completes with its lease; a view only once the writer is
        gone (WriterActiveError while it lives)."""
        with self.writing(run.run_id) as conn:
            done, changed = ownership.complete(conn, run, completed_at)
            if changed:
                self._announce(conn, run.pk)
        return done

    def resume(self, run_id: str, token: str, expires_at: float) -> RunRow:
        """Become the writer of the incomplete run ``run_id`` whose writer is gone."""
        run = self.get_run(run_id)
        with self.writing(run_id) as conn:
            length = ownership.take_over(conn, run, token, expires_at)
        return RunRow(run.pk, run.run_id, run.name, run.created_at, None, length, run.table,
                      run.columns, token, number=run.number, experiment=run.experiment,
                      sample=run.sample)

    def renew(self, tokens: Sequence[str], expires_at: float) -> set[str]:
        """Extend the leases ``tokens``; returns those still held (the others were
        taken over, or their runs completed by someone else)."""
        with self._lease_transaction() as conn:
            return ownership.renew(conn, tokens, expires_at)

    def release(self, tokens: Sequence[str]) -> None:
        """Give up the leases ``tokens``: their runs may be resumed at once."""
        with self._lease_transaction() as conn:
            ownership.release(conn, tokens)

    def view_refusal(self, run: RunRow) -> Exception:
        """Why a view of ``run`` may not write it: CompletedError or WriterActiveError."""
        with self.reading(run.run_id) as conn:
            return ownership.view_refusal(conn, run)

    def _announce(self, conn: sa.Connection, pk: int) -> None:
        """Tell listeners on other connections (PostgreSQL NOTIFY) that run ``pk`` changed.

        Sent inside the writing transaction, so it is delivered on commit only.
        """
        notice = self.dialect.change_notice(pk)
        if notice is not None:
            conn.exec_driver_sql(*notice)

    @contextmanager
    def filling_new_run(self, run_id: str, name: str, created_at: float,
                        specs: Sequence[ParamSpec], *, experiment: str | None = None,
                        sample: str | None = None,
                        number: int | None = None) -> Iterator[RunRow]:
        """Create a run to fill (copy, import); if filling fails, remove it again so
        a retry starts clean.  ``number``: the number it should keep if free."""
        run = self.create_run(run_id, name, created_at, specs, experiment=experiment,
                              sample=sample, number=number)
        hold(run.token)  # nobody resumes it while it is being filled
        try:
            yield run
        except BaseException:
            self.delete_run(run)
            raise
        finally:
            let_go(run.token)

    def restore_state(self, run: RunRow, metadata: dict[str, Any],
                      completed_at: float | None) -> None:
        """Give a copied or imported run its metadata and, if any, its completion time.

        An incomplete one is left without a writer, so ``store.resume_dataset(id)``
        may continue it at once (its measurement was interrupted elsewhere)."""
        for tag, value in metadata.items():
            self.set_metadata(run, tag, json.dumps(value))
        if completed_at is not None:
            self.complete(run, completed_at)
        elif run.token is not None:
            self.release([run.token])

    def delete_run(self, run: RunRow) -> None:
        """Remove an incomplete run and its results (used to undo a failed copy)."""
        d = self.dialect
        with self.writing(run.run_id) as conn:
            conn.exec_driver_sql(f"DELETE FROM {d.quote(run.table)} "
                                 f"WHERE {d.quote(RUN_COLUMN)} = {d.placeholder}", (run.pk,))
            conn.execute(run_metadata.delete().where(run_metadata.c.run_pk == run.pk))
            conn.execute(run_params.delete().where(run_params.c.run_pk == run.pk))
            conn.execute(runs.delete().where(runs.c.pk == run.pk))

    # -- parameters ----------------------------------------------------------
    def add_columns(self, run: RunRow, specs: Sequence[ParamSpec], first_position: int,
                    values: dict[str, Sequence[Any]] | None = None) -> None:
        """Add parameters (existing rows get NULL), optionally with values; their
        columns are added to the run's table where it lacks them (layouts.py)."""
        with self.writing(run.run_id) as conn:
            ownership.check_writer(conn, run)
            held = conn.execute(sa.select(run_params.c.spec, run_params.c.column_name)
                                .where(run_params.c.run_pk == run.pk)).all()
            self.dialect.check_run_layout(
                [*(ParamSpec.from_json(spec) for spec, _ in held), *specs], run.run_id)
            table_pk = conn.execute(
                sa.select(layouts.results_tables.c.pk)
                .where(layouts.results_tables.c.name == run.table)).scalar_one()
            columns = layouts.add_columns(conn, self.dialect, table_pk, specs,
                                          used={column for _, column in held})
            self._insert_params(conn, run.pk, specs, columns, first_position)
            run.columns.update((s.name, c) for s, c in zip(specs, columns, strict=True))
            if values:
                names = list(values)
                count = len(values[names[0]])
                rows = zip(*(as_list(values[n]) for n in names), itertools.repeat(run.pk),
                           range(count))
                conn.connection.cursor().executemany(self._update_sql(run, names), rows)

    # -- results -------------------------------------------------------------
    def insert_rows(self, run: RunRow, names: Sequence[str], rows: Sequence[Sequence[Any]],
                    new_length: int, kinds: Sequence[str | None] | None = None) -> None:
        """Insert ``(index, *values)`` rows and record the new length, atomically.

        ``kinds`` (numpy kind per parameter, None where not a plain number)
        lets PostgreSQL use its binary COPY.
        """
        with self.writing(run.run_id) as conn:
            if not self._claim_append(conn, run, new_length - len(rows), new_length,
                                      async_commit=True):
                return
            cursor = conn.connection.cursor()
            value_bytes = _row_value_bytes(rows, kinds)
            with self.dialect.claimed_append(cursor, run.table, len(rows), value_bytes):
                self.dialect.insert_many(cursor, run.table, run.pk, self._columns(run, names),
                                         rows, kinds=kinds,
                                         bytes_per_row=value_bytes / max(1, len(rows)))

    def insert_columns(self, run: RunRow, names: Sequence[str],
                       columns: Sequence[Sequence[Any]], start: int, count: int,
                       kinds: Sequence[str | None] | None = None) -> None:
        """Insert ``count`` rows given as columns, chunk by chunk, in one transaction."""
        with self.writing(run.run_id) as conn:
            if not self._claim_append(conn, run, start, start + count, async_commit=False):
                return
            cursor = conn.connection.cursor()
            value_bytes = _column_value_bytes(columns, kinds)
            with self.dialect.claimed_append(cursor, run.table, count, value_bytes):
                for lo in range(0, count, CHUNK_ROWS):
                    hi = min(lo + CHUNK_ROWS, count)
                    chunk = [np.arange(start + lo, start + hi, dtype=np.int64),
                             *(col[lo:hi] for col in columns)]
                    self.dialect.insert_many(cursor, run.table, run.pk,
                                             self._columns(run, names), values=chunk,
                                             kinds=kinds,
                                             bytes_per_row=value_bytes / max(1, count))

    def _claim_append(self, conn: sa.Connection, run: RunRow, first: int, new_length: int,
                      async_commit: bool) -> bool:
        """Record the run's new length before its rows go in, in the same transaction,
        if and only if this handle holds the lease and the run ends at ``first``.

        False: the rows are already stored (a retry after a lost acknowledgement).
        Otherwise raises why not: a view, a lease taken over, a completed run, or a
        stored length that differs from the writer's (StoredLengthConflict)."""
        claimed = run.token is not None and self.dialect.claim_append(
            conn.connection.cursor(), runs.name, run.pk, run.token, first, new_length,
            async_commit=async_commit)
        if claimed:
            return True
        ownership.refuse(conn, run, new_length)
        return False

    def update_rows(self, run: RunRow, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Apply ``(index, {name: db value})`` updates in one transaction."""
        with self.writing(run.run_id) as conn:
            ownership.check_writer(conn, run)
            cursor = conn.connection.cursor()
            for index, values in updates:
                if not values:
                    continue
                cursor.execute(self._update_sql(run, list(values)),
                               (*values.values(), run.pk, index))

    def _columns(self, run: RunRow, names: Sequence[str]) -> list[str]:
        """The columns holding parameters ``names`` of ``run``."""
        columns = run.columns
        try:
            return [columns[n] for n in names]
        except KeyError:  # a view behind parameters added elsewhere: refresh once
            self.load_specs(run.pk, run.run_id, columns)
            return [columns[n] for n in names]

    def _update_sql(self, run: RunRow, names: Sequence[str]) -> str:
        """UPDATE of ``names`` for one row (parameters: the values, the run, the index)."""
        d = self.dialect
        sets = ", ".join(f"{d.quote(c)} = {d.placeholder}" for c in self._columns(run, names))
        return (f"UPDATE {d.quote(run.table)} SET {sets} "
                f"WHERE {d.quote(RUN_COLUMN)} = {d.placeholder} "
                f"AND {d.quote(INDEX_COLUMN)} = {d.placeholder}")

    def _range_select_sql(self, run: RunRow, names: Sequence[str]) -> str:
        """SELECT of ``names`` for an index range (parameters: start, end)."""
        d = self.dialect
        index = d.quote(INDEX_COLUMN)
        selected = ", ".join(d.quote(c) for c in self._columns(run, names)) or index
        return (f"SELECT {selected} FROM {d.quote(run.table)} "
                f"WHERE {d.quote(RUN_COLUMN)} = {int(run.pk)} "
                f"AND {index} >= {d.placeholder} AND {index} < {d.placeholder} "
                f"ORDER BY {index}")

    def read_columns(self, run: RunRow, names: Sequence[str], start: int, end: int
                     ) -> Iterator[list[tuple[Any, ...]]]:
        """Yield chunks of the columns ``names`` for rows ``start <= index < end``.

        Each chunk is a list of per-column lists (already transposed).
        """
        sql = self._range_select_sql(run, names)
        # One index-range query per chunk: bounded memory on every engine
        # (client-side cursors would hold a whole result in memory).
        with self.reading(run.run_id) as conn:
            cursor = conn.connection.cursor()
            for lo in range(start, end, CHUNK_ROWS):
                cursor.execute(sql, (lo, min(lo + CHUNK_ROWS, end)))
                rows = cursor.fetchall()
                if rows:
                    yield columns_of(rows, len(names))
            cursor.close()

    def read_arrays(self, run: RunRow, names: Sequence[str], codecs: Sequence[ColumnCodec],
                    start: int, end: int) -> list[np.ndarray]:
        """Rows ``start <= index < end`` of ``names``, decoded straight into one
        array per parameter (see reader.py)."""
        sql = self._range_select_sql(run, names)
        with self.reading(run.run_id) as conn:
            cursor = conn.connection.cursor()

            def execute(lo: int, hi: int) -> Any:
                cursor.execute(sql, (lo, hi))
                return cursor

            try:
                return read_arrays(execute, codecs, start, end)
            finally:
                cursor.close()

    # -- metadata --------------------------------------------------------------
    def set_metadata(self, run: RunRow, tag: str, value_json: str) -> None:
        with self.writing(run.run_id) as conn:
            conn.exec_driver_sql(self.dialect.upsert_metadata_sql("run_metadata"),
                                 (run.pk, tag, value_json))

    def get_metadata(self, pk: int, run_id: str | None = None) -> dict[str, Any]:
        with self.reading(run_id) as conn:
            rows = conn.execute(
                sa.select(run_metadata.c.tag, run_metadata.c.value)
                .where(run_metadata.c.run_pk == pk)
            )
            return {tag: json.loads(value) for tag, value in rows}


def _row_value_bytes(rows: Sequence[Sequence[Any]],
                     kinds: Sequence[str | None] | None) -> int:
    """Bytes of the array, text and raw values in ``(index, *values)`` rows (the
    columns whose kind is None): what a row trigger copies besides the numbers."""
    if kinds is None:
        return 0
    positions = [j + 1 for j, kind in enumerate(kinds) if kind is None]
    return sum(len(row[j]) for row in rows for j in positions if row[j] is not None)


def _column_value_bytes(columns: Sequence[Sequence[Any]],
                        kinds: Sequence[str | None] | None) -> int:
    """:func:`_row_value_bytes` for values given as columns (numpy arrays or lists)."""
    if kinds is None:
        return 0
    return sum(column.nbytes if isinstance(column, np.ndarray)
               else sum(len(v) for v in column if v is not None)
               for column, kind in zip(columns, kinds, strict=True) if kind is None)


#: Position of each column of ``runs`` in a row of ``select(runs)``: a Row indexed
#: by position is several times faster than by attribute, which counts when a
#: store lists ten thousand runs.
_AT = {column.name: position for position, column in enumerate(runs.columns)}


def _run_row(row: sa.Row, columns: dict[str, str]) -> RunRow:
    """The RunRow of a row of ``select(runs)``."""
    at = _AT
    writer = WriterInfo(row[at["writer_host"]], row[at["writer_pid"]],
                        row[at["writer_token"]], row[at["writer_started_at"]],
                        row[at["writer_expires_at"]])
    return RunRow(row[at["pk"]], row[at["run_id"]], row[at["name"]], row[at["created_at"]],
                  row[at["completed_at"]], int(row[at["length"]]), row[at["results_table"]],
                  columns, writer=writer, number=row[at["number"]],
                  experiment=row[at["experiment"]], sample=row[at["sample"]])
