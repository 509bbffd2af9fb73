"""Cursor: a position in a run, to read what is new since the last read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IndexRangeError
from .paramspec import name_of

if TYPE_CHECKING:
    from .dataset import DataSet

#: Reads columns ``names`` from index ``start`` to the end of the stored results.
Reader = Callable[[list[str], int], list[np.ndarray]]


class Cursor:
    """A position in a DataSet; :meth:`read` returns everything after it.

    >>> cur = ds.cursor()            # at the current end; ds.cursor(0) at the start
    >>> xs, ys = cur.read("x", "y")  # rows added since, as numpy arrays
    >>> cur.position

    Each read selects a row-index range, so its cost is proportional to the
    new rows; on the writing DataSet, rows it flushed recently come from a
    decoded in-memory copy instead.  A cursor may be shared between threads.
    """

    def __init__(self, dataset: DataSet, position: int = 0,
                 reader: Reader | None = None) -> None:
        if isinstance(position, bool) or not isinstance(position, int | np.integer) \
                or position < 0:
            raise IndexRangeError(f"cursor position must be an integer >= 0, got {position!r}")
        self.dataset = dataset
        self._position = int(position)
        self._lock = threading.Lock()
        # ds.cursor() passes the DataSet's own reader (its decoded window, no flush
        # inside callbacks); a cursor made directly reads through get_data.
        self._reader: Reader = reader or (
            lambda names, start: dataset.get_data(*names, start=start))

    @property
    def position(self) -> int:
        """Index of the first result the next read returns."""
        return self._position

    @property
    def available(self) -> int:
        """How many results lie after the cursor right now."""
        return max(0, self.dataset.length - self._position)

    def read(self, *params: Any) -> list[np.ndarray]:
        """Parallel arrays of ``params`` (default: all) for the results after the cursor;
        advances it past them.

        Inside a subscription callback on the writing DataSet, the read returns
        the stored results (at least up to the ``length`` the callback was given)
        rather than forcing the writer's buffer to the database.
        """
        with self._lock:
            names = ([name_of(p) for p in params]
                     or [s.name for s in self.dataset.get_parameters()])
            if not names:  # a run without parameters: nothing to return but the count
                self._position = max(self._position, self.dataset.length)
                return []
            arrays = self._reader(names, self._position)
            self._position += len(arrays[0])
            return arrays

    def __repr__(self) -> str:
        return f"<Cursor {self.dataset.id!r} at {self._position}>"
