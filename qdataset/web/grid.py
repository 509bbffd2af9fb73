"""Recognising a sweep over a regular 2-D grid, and putting its values on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decimate import IMAGE_SIDE, shrink_image


@dataclass
class GridImage:
    """Values on a regular grid: ``image[row, col]`` at ``y0 + (row + 0.5) * dh / rows``."""

    image: np.ndarray
    x0: float
    y0: float
    dw: float
    dh: float
    shrunk: bool  # rows or columns were left out (see decimate.shrink_image)


def grid_image(x: np.ndarray, y: np.ndarray, z: np.ndarray, limit: int = IMAGE_SIDE
               ) -> GridImage | None:
    """``z`` on the grid that ``x`` and ``y`` sweep, or None if they do not form one.

    A grid: at least two evenly spaced values on each axis, and no more cells
    than points plus one line of the grid (a raster sweep being written fills
    it line by line).  Cells not measured yet are NaN; a point measured twice
    shows its last value.
    """
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        x, y, z = x[finite], y[finite], z[finite]
    xs, ys = np.unique(x), np.unique(y)
    nx, ny = len(xs), len(ys)
    if nx < 2 or ny < 2 or nx * ny > len(x) + max(nx, ny):
        return None
    dx, dy = np.diff(xs), np.diff(ys)
    if not (np.allclose(dx, dx.mean(), rtol=1e-3, atol=0)
            and np.allclose(dy, dy.mean(), rtol=1e-3, atol=0)):
        return None
    image = np.full((ny, nx), np.nan, dtype=np.float32)
    image[np.searchsorted(ys, y), np.searchsorted(xs, x)] = z
    image, shrunk = shrink_image(image, limit)
    step_x, step_y = float(dx.mean()), float(dy.mean())
    return GridImage(image, float(xs[0]) - step_x / 2, float(ys[0]) - step_y / 2,
                     step_x * nx, step_y * ny, shrunk)


def binned_image(x: np.ndarray, y: np.ndarray, z: np.ndarray, bins: int = 400
                 ) -> GridImage | None:
    """The mean of ``z`` in ``bins`` x ``bins`` cells over the points' extent: a
    scattered cloud too large to send point by point."""
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[finite], y[finite], z[finite]
    if len(x) == 0 or x.min() == x.max() or y.min() == y.max():
        return None
    extent = [[x.min(), x.max()], [y.min(), y.max()]]
    sums, xe, ye = np.histogram2d(x, y, bins=bins, range=extent, weights=z)
    counts, _, _ = np.histogram2d(x, y, bins=bins, range=extent)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = (sums / counts).T.astype(np.float32)
    return GridImage(image, float(xe[0]), float(ye[0]), float(xe[-1] - xe[0]),
                     float(ye[-1] - ye[0]), True)
