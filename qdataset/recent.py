"""Decoded copies of the rows a writer flushed most recently.

Live plots in the writing process read "what is new" through cursors many
times a second.  Going back to the database for rows this process has just
written costs a fetch and a decode per row and per subscriber, all under the
writer's GIL.  Instead, once a cursor exists on the writing DataSet, each
flushed batch is decoded once into numpy columns and kept here (up to
``limit`` rows); cursor reads inside that window are array slices.  Anything
outside it falls back to the database, so the cache only ever saves work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .store.codec import ColumnCodec, columns_of, float_matrix, is_masked

#: Rows kept decoded; older batches are dropped first.
DEFAULT_LIMIT = 1_000_000


class RecentRows:
    """The last flushed rows of one run, as numpy columns, in index order.

    Thread-safe: the writer adds batches while subscribers' callbacks read.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._batches: list[tuple[int, int, dict[str, np.ndarray]]] = []  # (start, stop, cols)
        self.start: int | None = None  # first cached index
        self.stop: int | None = None  # one past the last cached index

    def add(self, rows: Sequence[Sequence[Any]], names: Sequence[str],
            codecs: Sequence[ColumnCodec]) -> None:
        """Cache a flushed batch of ``[index, value, ...]`` rows (contiguous indices)."""
        if not rows:
            return
        first = rows[0][0]
        matrix = None
        if all(c.number_kind == "f" for c in codecs):
            try:
                matrix = float_matrix(rows, len(rows), len(names) + 1)
            except (TypeError, ValueError):  # None: a missing optional value
                pass
        if matrix is not None:
            decoded = {name: np.ascontiguousarray(matrix[:, j + 1], dtype=codec.dtype)
                       for j, (name, codec) in enumerate(zip(names, codecs, strict=True))}
        else:
            columns = columns_of(rows, len(names), skip=1)
            decoded = {name: codec.decode(column)
                       for name, codec, column in zip(names, codecs, columns, strict=True)}
        with self._lock:
            if self.stop is not None and first != self.stop:
                self._clear()  # a gap (bulk insert, modification): start a new window
            self._batches.append((first, first + len(rows), decoded))
            self.start = first if self.start is None else self.start
            self.stop = first + len(rows)
            while self._batches and self.stop - self._batches[0][1] >= self.limit:
                self._batches.pop(0)
                self.start = self._batches[0][0] if self._batches else None
            if not self._batches:
                self.stop = None

    def read(self, names: Sequence[str], start: int) -> list[np.ndarray | None] | None:
        """Columns ``names`` from ``start`` to the cached end (None per column when
        nothing is new), or None if those rows are not all cached."""
        with self._lock:
            if self.start is None or self.stop is None or not self.start <= start <= self.stop:
                return None
            batches = [b for b in self._batches if b[1] > start]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for lo, _hi, columns in batches:  # decoded arrays are never modified: no lock
            if any(name not in columns for name in names):
                return None
            offset = max(0, start - lo)
            for part, name in zip(parts, names, strict=True):
                part.append(columns[name][offset:])
        return [_join(part) for part in parts]

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._batches.clear()
        self.start = self.stop = None


def _join(parts: list[np.ndarray]) -> np.ndarray | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0].copy()
    if any(is_masked(p) for p in parts):
        return np.ma.concatenate(parts)
    return np.concatenate(parts)
