"""Server-side decimation: what a plot of millions of rows sends to the browser.

A screen has about a thousand pixel columns, so a line plot never needs more
than a minimum and a maximum per column: the drawn envelope is the same as the
full data's, and a million rows become two thousand points.  Images (heatmaps,
waterfalls) keep at most a fixed number of rows and columns.
"""

from __future__ import annotations

import numpy as np

#: Pixel columns a decimated line plot is reduced to (a wide plot on a wide screen).
PIXEL_COLUMNS = 1200

#: Above this many points a line or scatter plot is decimated instead of streamed.
STREAM_LIMIT = 20_000

#: Largest image side sent to the browser (heatmaps, waterfalls).
IMAGE_SIDE = 1000


def minmax_columns(x: np.ndarray, y: np.ndarray, columns: int = PIXEL_COLUMNS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The minimum and maximum of ``y`` in each of ``columns`` equal bins of ``x``.

    Returns ``(xs, ys)`` with two points per non-empty bin, at the bin's centre,
    ordered by ``x``: drawn as a line, a vertical stroke per pixel column that
    covers exactly the range the full data covers there.  Non-finite points are
    left out.

    >>> xs, ys = minmax_columns(np.arange(1_000_000.0), np.random.rand(1_000_000))
    >>> len(xs) <= 2 * PIXEL_COLUMNS
    True
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        x, y = x[keep], y[keep]
    if len(x) == 0:
        return np.empty(0), np.empty(0)
    low, high = float(x.min()), float(x.max())
    if high == low:
        return np.array([low, low]), np.array([y.min(), y.max()])
    width = (high - low) / columns
    bins = np.minimum(((x - low) / width).astype(np.intp), columns - 1)
    mins = np.full(columns, np.inf)
    maxs = np.full(columns, -np.inf)
    if len(bins) > 1 and (bins[1:] >= bins[:-1]).all():
        # A sweep in order (the usual case): bins come in runs, each reduced in one
        # pass (reduceat), cheaper than the scattered ufunc.at below.
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        mins[bins[starts]] = np.minimum.reduceat(y, starts)
        maxs[bins[starts]] = np.maximum.reduceat(y, starts)
    else:
        np.minimum.at(mins, bins, y)
        np.maximum.at(maxs, bins, y)
    used = np.flatnonzero(np.isfinite(mins))
    centres = low + (used + 0.5) * width
    return np.repeat(centres, 2), np.column_stack([mins[used], maxs[used]]).ravel()


def index_sample(count: int, limit: int = IMAGE_SIDE) -> np.ndarray:
    """At most ``limit`` evenly spread indices of ``range(count)``, the last included."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.intp))


def shrink_image(image: np.ndarray, limit: int = IMAGE_SIDE) -> tuple[np.ndarray, bool]:
    """``image`` with each side cut to at most ``limit`` by taking evenly spread
    rows and columns; and whether anything was left out."""
    rows, cols = image.shape
    if rows <= limit and cols <= limit:
        return image, False
    return image[np.ix_(index_sample(rows, limit), index_sample(cols, limit))], True
