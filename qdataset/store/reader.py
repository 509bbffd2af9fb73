"""Reads that decode straight into the result arrays.

A read of ``rows`` results allocates each result array once, at its final
size, and fills it chunk by chunk (``CHUNK_ROWS`` rows per range query), so
its peak memory is the result plus one chunk: no list of all rows, no
per-column copy of a whole matrix, no driver buffer of the whole result
(each chunk is its own query, which also keeps PostgreSQL's client-side
result small).  Columns whose width is only known from the data (strings,
variable-length arrays) are decoded per chunk and joined at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import StoreError
from .codec import ColumnCodec, columns_of, float_matrix, is_masked

#: Rows per range query: big enough to amortise the query, small enough to keep
#: a chunk's Python objects a few MB.
CHUNK_ROWS = 20_000


class _Column:
    """One result array being filled, its mask made only once a value is missing."""

    def __init__(self, codec: ColumnCodec, rows: int) -> None:
        self.codec = codec
        self.rows = rows
        fixed = not codec.spec.is_variable_length and codec.dtype.kind not in "USO"
        self.values: np.ndarray | None = (
            np.empty((rows, *codec.spec.shape), dtype=codec.dtype) if fixed else None)
        self.mask: np.ndarray | None = None
        self.parts: list[np.ndarray] = []

    def put(self, position: int, decoded: np.ndarray) -> None:
        if self.values is None:  # width known only from the data: join at the end
            self.parts.append(decoded)
            return
        stop = position + len(decoded)
        if not is_masked(decoded):
            self.values[position:stop] = decoded
            return
        self.values[position:stop] = np.ma.getdata(decoded)
        if self.mask is None:
            self.mask = np.zeros(self.values.shape, dtype=bool)
        self.mask[position:stop] = np.ma.getmaskarray(decoded)

    def result(self) -> np.ndarray:
        if self.values is None:
            if not self.parts:
                return self.codec.empty()
            if len(self.parts) == 1:
                return self.parts[0]
            if any(is_masked(p) for p in self.parts):
                return np.ma.concatenate(self.parts)
            return np.concatenate(self.parts)
        if self.mask is not None and self.mask.any():
            return np.ma.MaskedArray(self.values, mask=self.mask)
        return self.values


def read_arrays(execute: Callable[[int, int], Any], codecs: Sequence[ColumnCodec],
                start: int, stop: int) -> list[np.ndarray]:
    """Results ``start <= index < stop``, one array per codec.

    ``execute(lo, hi)`` runs the range query for rows ``lo <= index < hi`` and
    returns the cursor (rows of one value per codec, in index order).
    """
    rows = stop - start
    columns = [_Column(c, rows) for c in codecs]
    all_float = all(c.native and c.dtype.kind == "f" for c in codecs)
    position = 0
    for lo in range(start, stop, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, stop)
        cursor = execute(lo, hi)
        fetched = None
        if all_float:
            try:  # stream the cursor straight into one small matrix
                block = float_matrix(cursor, hi - lo, len(codecs))
            except (TypeError, ValueError):  # a NULL: decode this chunk the general way
                cursor = execute(lo, hi)
            else:
                for j, column in enumerate(columns):
                    column.put(position, block[:, j])
                position += hi - lo
                continue
        fetched = cursor.fetchall()
        for column, values in zip(columns, columns_of(fetched, len(codecs)), strict=True):
            column.put(position, column.codec.decode(values))
        position += len(fetched)
    if position != rows:  # the stored rows are not contiguous: never written that way
        raise StoreError(f"expected {rows} results from index {start}, found {position}; "
                         "the run's rows were changed outside qdataset")
    return [column.result() for column in columns]
