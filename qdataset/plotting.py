"""Quick matplotlib plots of a run: one axes per dependent parameter.

``plot_dataset(ds)`` chooses the plot from the ParamSpecs, like QCoDeS's
function of the same name: a line over one setpoint, an image over two
setpoints that form a grid (complete or swept up to a partly filled last
row), coloured points over two that do not, and an image of the traces of an
array-valued parameter.  Axis titles come from label and unit.  matplotlib
is imported when a plot is made, not with qdataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatError, InvalidArgumentError
from .gridding import find_grid, setpoint_names, with_missing
from .paramspec import ParamSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .dataset import DataSet

_PLOTTABLE_KINDS = set("biufc")


def plot_dataset(dataset: DataSet, axes: Sequence[Axes] | None = None) -> list[Axes]:
    """Plot every dependent parameter of ``dataset`` into an axes of its own;
    returns the axes (of a new figure unless ``axes`` is given, one per dependent).

    Complex values are shown as their magnitude; text parameters and arrays of
    more than one dimension are left out.

    >>> from qdataset.plotting import plot_dataset
    >>> axes = plot_dataset(store.read_dataset(run_id))
    >>> axes[0].figure.savefig("run.png")
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise FormatError("plot_dataset needs matplotlib: pip install matplotlib") from exc
    specs = dataset.get_parameters()
    setpoints = setpoint_names(specs)
    by_name = {s.name: s for s in specs}
    dependents = [s for s in specs if s.name not in setpoints
                  and s.type.kind in _PLOTTABLE_KINDS and len(s.shape) <= 1]
    if not dependents:
        raise InvalidArgumentError(
            f"run {dataset.id!r} has no numeric parameter to plot besides its setpoints "
            f"({', '.join(s.name for s in specs) or 'no parameters'}); read it with get_data"
        )
    if axes is None:
        _, grid_axes = plt.subplots(len(dependents), 1, squeeze=False, layout="constrained",
                                    figsize=(6.4, 3.8 * len(dependents)))
        axes = list(grid_axes[:, 0])
    elif len(axes) < len(dependents):
        raise InvalidArgumentError(
            f"run {dataset.id!r} has {len(dependents)} dependent parameters "
            f"({', '.join(s.name for s in dependents)}) but {len(axes)} axes were given"
        )
    names = [s.name for s in dependents]
    needed = {d for s in dependents for d in _setpoints_of(s, specs, setpoints)} | set(names)
    order = [s.name for s in specs if s.name in needed]
    columns = dict(zip(order, dataset.get_data(*order), strict=True)) if order else {}
    for ax, spec in zip(axes, dependents, strict=False):
        over = [by_name[n] for n in _setpoints_of(spec, specs, setpoints)]
        _plot_one(ax, spec, over, columns)
        ax.set_title(f"{dataset.name} · {dataset.id}", fontsize="small")
    return list(axes[:len(dependents)])


def _setpoints_of(spec: ParamSpec, specs: list[ParamSpec], setpoints: list[str]) -> list[str]:
    """The setpoints ``spec`` is plotted over: its depends_on, else the run's setpoints
    (array setpoints only as the axis of an array parameter)."""
    names = list(spec.depends_on) or setpoints
    return [n for n in names if n in setpoints]


def _plot_one(ax: Axes, spec: ParamSpec, over: list[ParamSpec],
              columns: dict[str, np.ndarray]) -> None:
    values, label = _numbers(columns[spec.name], spec)
    scalar_over = [s for s in over if not s.is_array]
    if spec.is_array:
        _plot_traces(ax, spec, values, label, scalar_over,
                     [s for s in over if s.is_array], columns)
    elif not scalar_over:
        ax.plot(np.arange(len(values)), values, marker=".")
        ax.set_xlabel("index")
        ax.set_ylabel(label)
    elif len(scalar_over) == 1:
        x = columns[scalar_over[0].name]
        grid = find_grid({scalar_over[0].name: x})
        if grid is not None:  # distinct setpoints: a line in setpoint order
            ax.plot(grid.coords[0], grid.fill(values), marker=".")
        else:
            ax.plot(with_missing(x), values, marker=".", linestyle="none")
        ax.set_xlabel(axis_label(scalar_over[0]))
        ax.set_ylabel(label)
    else:
        first, second = scalar_over[:2]
        grid = find_grid({first.name: columns[first.name], second.name: columns[second.name]})
        if grid is not None:
            image = grid.fill(values)
            artist = ax.pcolormesh(grid.coords[0], grid.coords[1], image.T, shading="nearest")
        else:
            artist = ax.scatter(with_missing(columns[first.name]),
                                with_missing(columns[second.name]), c=values, s=12)
        ax.set_xlabel(axis_label(first))
        ax.set_ylabel(axis_label(second))
        ax.figure.colorbar(artist, ax=ax, label=label)


def _plot_traces(ax: Axes, spec: ParamSpec, values: np.ndarray, label: str,
                 scalar_over: list[ParamSpec], array_over: list[ParamSpec],
                 columns: dict[str, np.ndarray]) -> None:
    """An image of a 1-D array parameter: its axis across, one row per result."""
    length = spec.shape[0]
    axis = next((s for s in array_over if s.shape == (length,)), None)
    across: np.ndarray = np.arange(length)
    across_label = f"{spec.name} element"
    if axis is not None:
        first = with_missing(columns[axis.name])
        if len(first) and np.all(first == first[0]):
            across, across_label = first[0], axis_label(axis)
    rows: np.ndarray = np.arange(len(values))
    rows_label = "index"
    if len(scalar_over) == 1:
        grid = find_grid({scalar_over[0].name: columns[scalar_over[0].name]})
        if grid is not None:
            rows, values = grid.coords[0], grid.fill(values)
            rows_label = axis_label(scalar_over[0])
    if len(values) == 0:
        values = np.full((1, length), np.nan)
        rows = np.arange(1)
    artist = ax.pcolormesh(across, rows, values, shading="nearest")
    ax.set_xlabel(across_label)
    ax.set_ylabel(rows_label)
    ax.figure.colorbar(artist, ax=ax, label=label)


def _numbers(values: Any, spec: ParamSpec) -> tuple[np.ndarray, str]:
    """Plottable floats (missing values NaN) and their axis title."""
    values = with_missing(values)
    if spec.type.kind == "c":
        return np.abs(values), f"|{axis_label(spec)}|"
    return values.astype(np.float64), axis_label(spec)


def axis_label(spec: ParamSpec) -> str:
    """``"label (unit)"``; the name stands in for a missing label."""
    text = spec.label or spec.name
    return f"{text} ({spec.unit})" if spec.unit else text
