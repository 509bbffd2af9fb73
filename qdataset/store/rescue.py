"""Rescue files: results a store could not write, kept on disk instead of lost.

When ``store.close()`` (also at interpreter exit) is left with accepted
results it cannot write — the database is gone or full, the run was taken
over or completed elsewhere — it saves them to a *rescue file*: a small
qdataset SQLite store beside the database file (the working directory for a
server database) holding, for each affected run, a run with the same id,
name and parameters whose rows are the unwritten results, renumbered from 0.
Its metadata under ``"qdataset_rescue"`` records where they belong: the store,
the run and the index of the first result.

A rescue file is an ordinary store (``connect(path).read_dataset(id)`` reads
it).  :func:`load_rescue` appends its rows to their runs once the database can
take them again, and marks them loaded so a second load adds nothing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CompletedError, RunNotFoundError, StoreError
from ..paramspec import ParamSpec
from .codec import number_kinds
from .engine import create_engine
from .migrate import ensure_schema
from .runs import RunStorage
from .writers import new_token

log = logging.getLogger("qdataset")

#: Metadata tag of a rescued run: where its rows belong.
RESCUE_TAG = "qdataset_rescue"


@dataclass
class Unwritten:
    """Results of one run that could not be written (rows in stored form)."""

    run_id: str
    name: str
    created_at: float
    specs: list[ParamSpec]
    #: ``[index, value of specs[0], ...]`` in index order
    rows: list[list[Any]]
    reason: str


def rescue_directories(database_file: Path | None) -> Iterator[Path]:
    """Where to try to write a rescue file, best first."""
    if database_file is not None:
        yield database_file.parent
    yield Path.cwd()
    yield Path(tempfile.gettempdir())


def write_rescue(source_url: str, database_file: Path | None,
                 unwritten: Sequence[Unwritten]) -> Path:
    """Save ``unwritten`` to a new rescue file; its path.  Tries each of
    :func:`rescue_directories` in turn (a full disk may refuse the first)."""
    stem = database_file.stem if database_file is not None else "qdataset"
    name = f"{stem}.rescue-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.db"
    problems = []
    for directory in rescue_directories(database_file):
        path = (directory / name).resolve()
        try:
            _write_file(path, source_url, unwritten)
            return path
        except Exception as exc:  # noqa: BLE001 - try the next place
            problems.append(f"{path}: {exc}")
            path.unlink(missing_ok=True)
    raise StoreError("could not write a rescue file anywhere (" + "; ".join(problems) + ")")


def _write_file(path: Path, source_url: str, unwritten: Sequence[Unwritten]) -> None:
    engine = create_engine(f"sqlite:///{path}", create=True)
    try:
        ensure_schema(engine, create=True)
        storage = RunStorage(engine)
        for item in unwritten:
            run = storage.create_run(item.run_id, item.name, item.created_at, item.specs)
            rows = [[offset, *row[1:]] for offset, row in enumerate(item.rows)]
            if rows:
                storage.insert_rows(run, [s.name for s in item.specs], rows, len(rows),
                                    number_kinds(item.specs))
            storage.set_metadata(run, RESCUE_TAG, json.dumps({
                "store": source_url, "run": item.run_id,
                "first_index": item.rows[0][0] if item.rows else None,
                "count": len(rows), "reason": item.reason, "rescued_at": time.time(),
                "loaded_at": None}))
            storage.release([run.token])
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Loaded:
    """What :func:`load_rescue` did with one rescued run."""

    run_id: str
    count: int
    #: index of the first loaded result in the run (None: skipped)
    first_index: int | None
    note: str


def load_rescue(target: RunStorage, path: str | os.PathLike, lease_timeout: float
                ) -> list[Loaded]:
    """Append the rows of the rescue file ``path`` to their runs in ``target``.

    Each run must be incomplete and its writer gone (the process that rescued
    the rows has exited); the rows go after the run's last stored result, so
    a run resumed meanwhile keeps its own results too.  Runs already loaded
    from this file are skipped.
    """
    file = Path(path)
    if not file.is_file():
        raise StoreError(f"no rescue file at {str(file)!r}")
    engine = create_engine(f"sqlite:///{file}", create=False)
    try:
        ensure_schema(engine, create=False)
        source = RunStorage(engine)
        return [_load_run(source, target, row.run_id, lease_timeout)
                for row in source.list_runs()]
    finally:
        engine.dispose()


def _load_run(source: RunStorage, target: RunStorage, run_id: str,
              lease_timeout: float) -> Loaded:
    rescued = source.get_run(run_id)
    meta = source.get_metadata(rescued.pk, run_id).get(RESCUE_TAG)
    if not isinstance(meta, dict):
        raise StoreError(f"run {run_id!r} of this file carries no rescue record; "
                         "is it a qdataset rescue file?")
    if meta.get("loaded_at") is not None:
        return Loaded(run_id, 0, None, "already loaded from this file")
    count = rescued.length
    try:
        run = target.resume(run_id, new_token(), time.time() + lease_timeout)
    except RunNotFoundError:
        raise RunNotFoundError(
            f"run {run_id!r} is not in {target.engine.url!r}; load the rescue file into "
            f"the store it came from ({meta.get('store')})") from None
    except CompletedError:
        raise CompletedError(
            f"run {run_id!r} was completed without its {count} rescued results, so they "
            "cannot be added to it; they stay readable in the rescue file "
            "(qdataset.connect(path).read_dataset(id))") from None
    try:
        specs = source.load_specs(rescued.pk, run_id)
        names = [s.name for s in specs]
        first = run.length
        # All of it in one transaction: a load that fails adds nothing, so loading
        # the file again cannot add any row twice.  (Rescued rows were held in
        # memory, so they fit in memory.)
        columns: list[list[Any]] = [[] for _ in names]
        for chunk in source.read_columns(rescued, names, 0, count):
            for column, part in zip(columns, chunk, strict=True):
                column.extend(part)
        target.insert_columns(run, names, columns, first, count, number_kinds(specs))
        meta["loaded_at"] = time.time()
        meta["loaded_first_index"] = first
        source.set_metadata(rescued, RESCUE_TAG, json.dumps(meta))
    finally:
        target.release([run.token])
    expected = meta.get("first_index")
    note = ("in place" if expected == first
            else f"after the run's {first} stored results (they were to start at {expected})")
    return Loaded(run_id, count, first, note)

