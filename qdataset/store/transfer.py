"""Runs moved as a whole: copies between stores and imports of decoded files.

Both create the run in the target, fill it, restore its metadata and
completion, and remove it again if anything fails, so a retry starts clean.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
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
    # The copy keeps its groups, and its number where the target has it free.
    with target.filling_new_run(run.run_id, run.name, run.created_at, specs,
                                experiment=run.experiment, sample=run.sample,
                                number=run.number) as copied:
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
               metadata: dict[str, Any], completed_at: float | None, *,
               experiment: str | None = None, sample: str | None = None,
               number: int | None = None,
               chunks: Iterable[tuple[Sequence[Sequence[Any]], int]] = ()) -> int | None:
    """Create a run from encoded ``columns`` (one per spec, ``count`` rows each),
    followed by the encoded ``(columns, count)`` of ``chunks`` (an import that
    streams its rows); all or nothing.  Returns the number the run got (``number``
    if it was free)."""
    names = [s.name for s in specs]
    kinds = number_kinds(specs)
    with target.filling_new_run(run_id, name, created_at, specs, experiment=experiment,
                                sample=sample, number=number) as run:
        position = 0
        for part, rows in itertools.chain([(columns, count)], chunks):
            if rows:
                target.insert_columns(run, names, part, position, rows, kinds)
                position += rows
        target.restore_state(run, metadata, completed_at)
    return run.number
