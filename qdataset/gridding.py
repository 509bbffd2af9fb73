"""Is a run's table of results a grid?  Setpoint columns in, a :class:`Grid` out.

A sweep over two gates writes one row per point; whether the rows form a grid
decides how a run is shown: as an image and an xarray Dataset whose dimensions
are the setpoints, or as a list of points along ``index``.  The answer depends
only on the set of setpoint values, not on their order, so a grid swept
outer-first, inner-first, backwards or shuffled is the same grid.  A sweep
that stopped early (a live run, or an interrupted one) is still a grid when
what is missing is the end of its sweep order: the last row (of the innermost
setpoint) may be incomplete.

The setpoints are factorised with a pandas MultiIndex (no Python loop over
rows); :meth:`Grid.fill` places a column into the grid with one vectorised
assignment.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Partially filled grids are recognised for at most this many setpoints (the
#: candidate sweep orders are tried one by one: 4! = 24 at most).
MAX_PARTIAL_DIMS = 4


@dataclass(frozen=True)
class Grid:
    """Rows that form a rectilinear grid over the setpoints ``dims``.

    ``coords[k]`` holds the distinct values of ``dims[k]``, sorted;
    ``codes[k][row]`` is the position of that row's value in ``coords[k]``.
    """

    dims: tuple[str, ...]
    coords: tuple[np.ndarray, ...]
    codes: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    @property
    def rows(self) -> int:
        return len(self.codes[0])

    @property
    def full(self) -> bool:
        """True when every cell of the grid has a row."""
        return self.rows == int(np.prod(self.shape))

    def fill(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one entry per row, each a scalar or an array) laid out on the
        grid: shape ``self.shape + values.shape[1:]``.  Cells without a row hold
        NaN (integers and bools then become float64), NaT, or None."""
        values = with_missing(values)
        out_shape = self.shape + values.shape[1:]
        if self.full:
            out = np.empty(out_shape, dtype=values.dtype)
        else:
            dtype, fill = missing_fill(values.dtype)
            out = np.full(out_shape, fill, dtype=dtype)
        out[self.codes] = values
        return out


def find_grid(setpoints: Mapping[str, np.ndarray]) -> Grid | None:
    """The grid the setpoint columns form, or None when they form none.

    Every column must have one scalar value per row, none missing, and no two
    rows may share all their setpoint values.

    >>> find_grid({"x": np.array([0., 0., 1., 1.]), "y": np.array([5, 6, 5, 6])}).shape
    (2, 2)
    """
    import pandas as pd

    names = tuple(setpoints)
    columns = [setpoints[name] for name in names]
    if not columns or any(np.ndim(c) != 1 for c in columns):
        return None
    rows = len(columns[0])
    if rows == 0 or any(len(c) != rows for c in columns):
        return None
    if any(np.ma.is_masked(c) for c in columns):
        return None
    columns = [np.asarray(np.ma.getdata(c)) for c in columns]
    index = pd.MultiIndex.from_arrays(columns, names=names)
    codes = tuple(np.asarray(c, dtype=np.intp) for c in index.codes)
    if any((c < 0).any() for c in codes) or not index.is_unique:  # NaN/NaT, or repeats
        return None
    coords = tuple(_level_values(level, column)
                   for level, column in zip(index.levels, columns, strict=True))
    grid = Grid(names, coords, codes)
    if grid.full or _is_sweep_prefix(columns):
        return grid
    return None


def setpoint_names(specs: Sequence[Any]) -> list[str]:
    """Names of the setpoints among ParamSpecs: role "setpoint", or named in
    another parameter's depends_on."""
    named = {d for s in specs for d in s.depends_on}
    return [s.name for s in specs if s.role == "setpoint" or s.name in named]


def with_missing(values: np.ndarray) -> np.ndarray:
    """A plain ndarray for ``values``: the masked entries of a masked array become
    NaN (integers and bools become float64), NaT, or None (an object array)."""
    if not isinstance(values, np.ma.MaskedArray):
        return np.asarray(values)
    mask = np.ma.getmaskarray(values)
    data = np.ma.getdata(values)
    if not mask.any():
        return np.asarray(data)
    dtype, fill = missing_fill(data.dtype)
    out = data.astype(dtype)
    out[mask] = fill
    return out


def missing_fill(dtype: np.dtype) -> tuple[np.dtype, object]:
    """The dtype able to hold a missing value beside values of ``dtype``, and that value."""
    if dtype.kind in "fc":
        return dtype, np.nan
    if dtype.kind in "iub":
        return np.dtype(np.float64), np.nan
    if dtype.kind in "Mm":
        return dtype, np.array("NaT", dtype=dtype)[()]
    return np.dtype(object), None


def _level_values(level, column: np.ndarray) -> np.ndarray:
    values = np.asarray(level)
    if column.dtype.kind in "USMm" and values.dtype != column.dtype:
        values = values.astype(column.dtype)
    return values


def _is_sweep_prefix(columns: list[np.ndarray]) -> bool:
    """True when the rows are the start of a full sweep in some order of the
    setpoints: all outer rows complete, the last one possibly not.

    Values are numbered in the order they first appear (so a sweep that runs
    downwards is as good as one that runs upwards) and the outer setpoints'
    combined number of each row is compared with what a complete sweep
    would have written before it.
    """
    import pandas as pd

    if not 2 <= len(columns) <= MAX_PARTIAL_DIMS:
        return False
    appearance = []
    for column in columns:
        codes, uniques = pd.factorize(column, sort=False)
        appearance.append((np.asarray(codes, dtype=np.int64), len(uniques)))
    rows = len(columns[0])
    for order in itertools.permutations(range(len(columns))):
        *outer, inner = order
        outer_shape = tuple(appearance[k][1] for k in outer)
        position = np.ravel_multi_index(tuple(appearance[k][0] for k in outer), outer_shape)
        last = int(position.max())
        before = int(np.count_nonzero(position < last))
        if before == last * appearance[inner][1] and rows - before <= appearance[inner][1]:
            return True
    return False
