"""Growing in-memory columns of one run, shared by every page that shows it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..paramspec import ParamSpec


class Columns:
    """The rows of a run read so far, one growing numpy array per parameter.

    Appended to by one follower thread and read by the pages: a slice of rows
    below :attr:`length` never changes once written, and a buffer that had to
    grow is replaced (not resized in place), so readers take views without
    copying and without holding the lock while they use them.
    """

    def __init__(self, specs: Sequence[ParamSpec]) -> None:
        self.specs = list(specs)
        self._lock = threading.Lock()
        self._arrays: dict[str, np.ndarray] = {
            s.name: np.empty((0, *_held_shape(s)), dtype=_held_dtype(s)) for s in specs}
        self._length = 0
        self._memo: dict[Any, tuple[int, Any]] = {}

    def memo(self, key: Any, length: int, compute: Callable[[], Any]) -> Any:
        """``compute()`` of the first ``length`` rows, computed once for every page
        showing the run (e.g. a decimated picture): ten viewers cost one computation.
        One value is kept per key (the latest length asked for)."""
        with self._lock:
            hit = self._memo.get(key)
        if hit is not None and hit[0] == length:
            return hit[1]
        value = compute()
        with self._lock:
            self._memo[key] = (length, value)
        return value

    @property
    def length(self) -> int:
        """Rows held."""
        return self._length

    def extend(self, arrays: Sequence[np.ndarray]) -> None:
        """Append parallel ``arrays`` (one per spec, in order)."""
        count = len(arrays[0]) if arrays else 0
        if not count:
            return
        with self._lock:
            end = self._length + count
            for spec, values in zip(self.specs, arrays, strict=True):
                held = self._arrays[spec.name]
                if end > len(held):
                    grown = np.empty((max(end, 2 * len(held), 1024), *held.shape[1:]),
                                     dtype=held.dtype)
                    grown[:self._length] = held[:self._length]
                    held = self._arrays[spec.name] = grown
                held[self._length:end] = values
            self._length = end

    def get(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` (clamped to :attr:`length`) of column ``name``: a view."""
        with self._lock:
            length, held = self._length, self._arrays[name]
        stop = length if stop is None else min(stop, length)
        return held[start:max(start, stop)]


def _held_dtype(spec: ParamSpec) -> np.dtype:
    # Variable-length arrays come back as object arrays; strings as unsized unicode.
    if spec.is_variable_length or spec.type.kind in "USV":
        return np.dtype(object)
    return spec.type


def _held_shape(spec: ParamSpec) -> tuple[int, ...]:
    return () if spec.is_variable_length else spec.shape  # type: ignore[return-value]
