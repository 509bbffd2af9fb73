"""Analysis results, figures and child experiments kept with an experiment.

:class:`Artifacts` is owned by :class:`~qdataset.experiment.ExperimentData`
and is given what it needs: the experiment id (results are stamped with it,
unnamed figures are named after it), a function that waits for running
analysis (lookups wait for it by default), one that reports the
experiment's errors (for "not found" messages) and ``on_change``.

Locking: ``Artifacts._lock`` guards the results and figures only; nothing
is waited for, written or called back while it is held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import (
    ExperimentDataError,
    ExperimentEntryNotFound,
    InvalidIndexError,
    UnsupportedResultError,
)
from .figures import FigureData, figure_bytes
from .results import AnalysisResult


class Artifacts:
    """Analysis results and figures of an experiment."""

    def __init__(self, owner: str, wait_for_analysis: Callable[[float | None], None],
                 errors: Callable[[], str], on_change: Callable[[], None]) -> None:
        self._owner = owner  # the experiment id
        self._wait_for_analysis = wait_for_analysis
        self._errors = errors
        self._on_change = on_change
        self._lock = threading.Lock()
        self._results: OrderedDict[str, AnalysisResult] = OrderedDict()
        self._figures: OrderedDict[str, FigureData] = OrderedDict()
        self._unsaved_figures: set[str] = set()  # figures the next save must write

    # -- analysis results ------------------------------------------------------------------
    def add_results(self, results: AnalysisResult | Iterable[AnalysisResult]) -> None:
        """Add one or more :class:`AnalysisResult` (stamped with the experiment id)."""
        items = [results] if isinstance(results, AnalysisResult) else list(results)
        for item in items:
            if not isinstance(item, AnalysisResult):
                raise UnsupportedResultError(
                    f"expected AnalysisResult objects, got {type(item).__name__}; "
                    "e.g. AnalysisResult('fidelity', 0.98)")
        with self._lock:
            for item in items:
                item.experiment_id = self._owner
                self._results[item.result_id] = item
        self._on_change()

    def results(self, index: int | slice | str | None = None, *, block: bool = True,
                timeout: float | None = None) -> Any:
        """Analysis results: all, by position, slice, result id or name (see ExperimentData)."""
        if block:
            self._wait_for_analysis(timeout)
        found = self._lookup(index)
        if found is not None:
            return found
        with self._lock:
            names = sorted({r.name for r in self._results.values()})
        message = (f"experiment {self._owner} has no analysis result {index!r}; "
                   f"names present: {names}")
        errors = self._errors()
        if errors:
            message += f"\nErrors:{errors}"
        raise ExperimentEntryNotFound(message)

    def _lookup(self, index: int | slice | str | None) -> Any:
        """The result(s) for ``index``, or None if there is none."""
        with self._lock:
            values = list(self._results.values())
            if index is None:
                return values
            if isinstance(index, int):
                return values[index] if -len(values) <= index < len(values) else None
            if isinstance(index, slice):
                return values[index] or None
            if isinstance(index, str):
                if index in self._results:
                    return self._results[index]
                named = [r for r in values if r.name == index]
                return (named[0] if len(named) == 1 else named) or None
        raise InvalidIndexError(f"analysis result index must be int, slice or str, "
                                f"not {type(index).__name__}")

    def delete_result(self, key: int | str) -> str:
        """Delete an analysis result by position, id or (unique) name; returns its id."""
        found = self.results(key, block=False)
        if isinstance(found, list):
            raise ExperimentDataError(
                f"{len(found)} analysis results are named {key!r}; delete one by id")
        with self._lock:
            self._results.pop(found.result_id, None)
        self._on_change()
        return found.result_id

    def has_any(self) -> bool:
        """True if there is an analysis result or a figure."""
        with self._lock:
            return bool(self._results or self._figures)

    # -- figures ---------------------------------------------------------------------------
    def add_figures(self, figures: Any, figure_names: str | Sequence[str] | None = None,
                    overwrite: bool = False) -> str | list[str]:
        """Add figures; returns the name(s) used (see ExperimentData.add_figures)."""
        single = not isinstance(figures, list | tuple)
        items = [figures] if single else list(figures)
        if figure_names is None:
            names: list[str | None] = [None] * len(items)
        else:
            names = [figure_names] if isinstance(figure_names, str) else list(figure_names)
            if len(names) != len(items):
                raise ExperimentDataError(
                    f"{len(items)} figures but {len(names)} figure_names; give one name each")
        # Rendering a matplotlib figure takes a while: done before taking the lock.
        rendered = [figure_bytes(figure) for figure in items]
        used: list[str] = []
        with self._lock:
            for (data, fmt), name in zip(rendered, names, strict=True):
                name = name or f"figure_{self._owner[:8]}_{len(self._figures)}"
                if not overwrite:
                    name = _unique_name(name, self._figures)
                self._figures[name] = FigureData(name, fmt, data)
                self._unsaved_figures.add(name)
                used.append(name)
        self._on_change()
        return used[0] if single else used

    def figure(self, key: str | int) -> FigureData:
        """A figure by name or position."""
        with self._lock:
            if isinstance(key, int):
                names = list(self._figures)
                if -len(names) <= key < len(names):
                    return self._figures[names[key]]
            elif key in self._figures:
                return self._figures[key]
            present = list(self._figures)
        raise ExperimentEntryNotFound(
            f"experiment {self._owner} has no figure {key!r}; figures: {present}")

    def delete_figure(self, key: str | int) -> str:
        """Delete a figure by name or position; returns its name."""
        name = self.figure(key).name
        with self._lock:
            self._figures.pop(name, None)
            self._unsaved_figures.discard(name)
        self._on_change()
        return name

    def figure_names(self) -> list[str]:
        with self._lock:
            return list(self._figures)

    # -- saving, loading, copying ----------------------------------------------------------
    def for_save(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """(result rows, rows of figures not saved yet, all figure names in order)."""
        with self._lock:
            results = [r.to_row() for r in self._results.values()]
            names = list(self._figures)
            figures = [{"name": name, "format": fig.format, "data": fig.data,
                        "created_at": fig.created_at, "position": position}
                       for position, (name, fig) in enumerate(self._figures.items())
                       if name in self._unsaved_figures]
        return results, figures, names

    def saved(self, figure_names: Iterable[str]) -> None:
        """These figures are in the database now."""
        with self._lock:
            self._unsaved_figures.difference_update(figure_names)

    def restore(self, results: Iterable[AnalysisResult], figures: Iterable[FigureData],
                saved: bool) -> None:
        """Take results and figures as they are (from a load, or copies for a copy)."""
        with self._lock:
            for result in results:
                result.experiment_id = self._owner
                self._results[result.result_id] = result
            for fig in figures:
                self._figures[fig.name] = fig
                if not saved:
                    self._unsaved_figures.add(fig.name)

    def copies(self) -> tuple[list[AnalysisResult], list[FigureData]]:
        """Copies of the results (new ids) and figures, for a copied experiment."""
        with self._lock:
            results = list(self._results.values())
            figures = [fig.copy() for fig in self._figures.values()]
        return [r.copy() for r in results], figures


def _unique_name(name: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if name not in taken:
        return name
    n = 1
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


class Children:
    """Child experiments, by experiment id, in the order they were attached."""

    def __init__(self, owner: str) -> None:
        self._owner = owner  # the parent's experiment id
        self._lock = threading.Lock()
        self._children: OrderedDict[str, Any] = OrderedDict()

    def add(self, child_id: str, child: Any) -> None:
        with self._lock:
            self._children[child_id] = child

    def all(self) -> list[Any]:
        with self._lock:
            return list(self._children.values())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._children)

    def get(self, index: int | slice | str | None) -> Any:
        """All children (None), by position, slice, or experiment id."""
        with self._lock:
            children = list(self._children.values())
            named = self._children.get(index) if isinstance(index, str) else None
            ids = list(self._children)
        if index is None:
            return children
        if isinstance(index, int | slice):
            try:
                return children[index]
            except IndexError:
                pass
        elif not isinstance(index, str):
            raise InvalidIndexError(f"child index must be int, slice or experiment id, "
                                    f"not {type(index).__name__}")
        elif named is not None:
            return named
        raise ExperimentEntryNotFound(
            f"experiment {self._owner} has no child {index!r}; children: {ids}")
