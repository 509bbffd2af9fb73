"""Runs moved as a whole: copies between stores and imports of decoded files.

Both create the run in the target, fill it, restore its metadata and
completion, and remove it again if anything fails, so a retry starts clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..paramspec import ParamSpec
from .codec import number_kinds
from .runs import RunStorage


def copy_run(source: RunStorage, target: RunStorage, run_id: str,
             progress: Callable[[int], Any] | None = None) -> None:
    """Copy run ``run_id`` from ``source`` to ``target``: same id, values as stored
    (no decode/encode), metadata and completion.

    One chunk of rows per statement; ``progress(rows)`` after each chunk.
    """
    run = source.get_run(run_id)
    specs = source.load_specs(run.pk, run_id)
    names = [s.name for s in specs]
    kinds = number_kinds(specs)
    with target.filling_new_run(run.run_id, run.name, run.created_at, specs) as copied:
        position = 0
        if names:
            for chunk in source.read_columns(run, names, 0, run.length):
                target.insert_columns(copied, names, chunk, position, len(chunk[0]), kinds)
                position += len(chunk[0])
                if progress is not None:
                    progress(len(chunk[0]))
        elif run.length:  # results without any parameter: only their indices
            target.insert_columns(copied, [], [], 0, run.length)
        target.restore_state(copied, source.get_metadata(run.pk, run_id), run.completed_at)


def import_run(target: RunStorage, run_id: str, name: str, created_at: float,
               specs: Sequence[ParamSpec], columns: Sequence[Sequence[Any]], count: int,
               metadata: dict[str, Any], completed_at: float | None) -> None:
    """Create a run from encoded ``columns`` (one per spec, ``count`` rows each)."""
    with target.filling_new_run(run_id, name, created_at, specs) as run:
        if count:
            target.insert_columns(run, [s.name for s in specs], columns, 0, count,
                                  number_kinds(specs))
        target.restore_state(run, metadata, completed_at)
