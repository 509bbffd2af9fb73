"""Analysis results and figures kept with an experiment: adding, looking up, deleting.

:class:`Artifacts` is a base class of :class:`~qdataset.experiment.ExperimentData`;
it works on the experiment's ``_lock``, ``_results``, ``_figures``,
``_dirty_figures`` (figures not yet saved), ``_pending_futures``,
``errors``, ``_note_status`` and ``_changed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent import futures
from typing import Any

from .errors import ExperimentDataError, ExperimentEntryNotFound
from .figures import FigureData, figure_bytes
from .results import AnalysisResult


class Artifacts:
    """Analysis results and figures of an experiment."""

    # -- analysis results -------------------------------------------------------------------
    def add_analysis_results(self, results: AnalysisResult | Iterable[AnalysisResult]) -> None:
        """Add one or more :class:`AnalysisResult`.

        >>> exp.add_analysis_results(AnalysisResult("fidelity", 0.98, quality="good"))
        """
        items = [results] if isinstance(results, AnalysisResult) else list(results)
        for item in items:
            if not isinstance(item, AnalysisResult):
                raise TypeError(f"expected AnalysisResult objects, got {type(item).__name__}")
        with self._lock:
            for item in items:
                item.experiment_id = self.experiment_id
                self._results[item.result_id] = item
        self._note_status()
        self._changed()

    def analysis_results(self, index: int | slice | str | None = None, *, block: bool = True,
                         timeout: float | None = None) -> Any:
        """Analysis results: all, by position, slice, result id or name.

        With ``block`` (the default) it first waits for running analysis
        callbacks.  A name shared by several results gives a list.
        """
        if block:
            futures.wait(self._pending_futures(include_jobs=False), timeout=timeout)
        with self._lock:
            values = list(self._results.values())
            if index is None:
                return values
            if isinstance(index, int):
                if -len(values) <= index < len(values):
                    return values[index]
            elif isinstance(index, slice):
                if values[index]:
                    return values[index]
            elif isinstance(index, str):
                if index in self._results:
                    return self._results[index]
                named = [r for r in values if r.name == index]
                if len(named) == 1:
                    return named[0]
                if named:
                    return named
            else:
                raise TypeError(f"analysis result index must be int, slice or str, "
                                f"not {type(index).__name__}")
        message = (f"experiment {self.experiment_id} has no analysis result {index!r}; "
                   f"names present: {sorted({r.name for r in values})}")
        errors = self.errors()
        if errors:
            message += f"\nErrors:{errors}"
        raise ExperimentEntryNotFound(message)

    def delete_analysis_result(self, key: int | str) -> str:
        """Delete an analysis result by position, id or (unique) name; returns its id."""
        with self._lock:
            if isinstance(key, int):
                found = self.analysis_results(key, block=False)
            else:
                found = self.analysis_results(key, block=False)
                if isinstance(found, list):
                    raise ExperimentDataError(
                        f"{len(found)} analysis results are named {key!r}; delete one by id")
            del self._results[found.result_id]
        self._note_status()
        self._changed()
        return found.result_id

    # -- figures -----------------------------------------------------------------------------------
    def add_figures(self, figures: Any, figure_names: str | Sequence[str] | None = None,
                    overwrite: bool = False) -> str | list[str]:
        """Add figures: matplotlib Figures (stored as SVG), SVG text/bytes or PNG bytes.

        Names default to ``figure_<id>_<n>``; a name already in use gets a
        ``-1``, ``-2``, ... suffix unless ``overwrite``.  Returns the name(s)
        used: a str for one figure, a list for a list.

        >>> exp.add_figures(fig, figure_names="hist")
        'hist'
        """
        single = not isinstance(figures, list | tuple)
        items = [figures] if single else list(figures)
        if figure_names is None:
            names: list[str | None] = [None] * len(items)
        else:
            names = [figure_names] if isinstance(figure_names, str) else list(figure_names)
            if len(names) != len(items):
                raise ExperimentDataError(
                    f"{len(items)} figures but {len(names)} figure_names; give one name each")
        used: list[str] = []
        with self._lock:
            for figure, name in zip(items, names, strict=True):
                data, fmt = figure_bytes(figure)
                name = name or f"figure_{self.experiment_id[:8]}_{len(self._figures)}"
                if not overwrite:
                    name = _unique_name(name, self._figures)
                self._figures[name] = FigureData(name, fmt, data)
                self._dirty_figures.add(name)
                used.append(name)
        self._note_status()
        self._changed()
        return used[0] if single else used

    def figure(self, key: str | int) -> FigureData:
        """A figure by name or position: ``.data`` (bytes), ``.format`` ("svg"/"png")."""
        with self._lock:
            if isinstance(key, int):
                names = list(self._figures)
                if -len(names) <= key < len(names):
                    return self._figures[names[key]]
            elif key in self._figures:
                return self._figures[key]
            raise ExperimentEntryNotFound(
                f"experiment {self.experiment_id} has no figure {key!r}; "
                f"figures: {list(self._figures)}")

    def delete_figure(self, key: str | int) -> str:
        """Delete a figure by name or position; returns its name."""
        name = self.figure(key).name
        with self._lock:
            del self._figures[name]
            self._dirty_figures.discard(name)
        self._note_status()
        self._changed()
        return name


def _unique_name(name: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if name not in taken:
        return name
    n = 1
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"
