"""PostgreSQL's binary COPY format, built a whole column at a time with numpy.

psycopg's ``Copy.write_row`` formats every value in Python: several
microseconds a row, more than the rest of ``add_result``.  Columns of plain
numbers (the bulk of measurement data) instead become one structured numpy
array laid out exactly as ``COPY ... (FORMAT BINARY)`` expects, a few
hundred nanoseconds a row.  Anything else (text, bytes, NULLs) keeps the
text format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Big-endian wire format per numpy kind, matching dialect._COLUMN_TYPES for PostgreSQL
#: (DOUBLE PRECISION, BIGINT, SMALLINT for bools).
_WIRE_FORMATS = {"f": ">f8", "i": ">i8", "u": ">i8", "b": ">i2"}

#: Signature, flags (none) and header-extension length (none).
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(4) + bytes(4)
_TRAILER = b"\xff\xff"  # a field count of -1


def binary_copy_payload(columns: Sequence[Sequence[Any]],
                        kinds: Sequence[str | None]) -> bytes | None:
    """``columns`` (equal lengths) as one binary COPY stream, or None if one of them
    is not a plain number column (``kinds``: numpy kind per column) or holds a NULL."""
    formats = [_WIRE_FORMATS.get(kind or "") for kind in kinds]
    if not columns or None in formats:
        return None
    layout: list[tuple[str, str]] = [("fields", ">i2")]
    for j, fmt in enumerate(formats):
        layout += [(f"size{j}", ">i4"), (f"value{j}", fmt)]
    tuples = np.empty(len(columns[0]), dtype=np.dtype(layout))
    tuples["fields"] = len(formats)
    for j, (fmt, column) in enumerate(zip(formats, columns, strict=True)):
        if not isinstance(column, np.ndarray) and None in column:
            return None  # a missing value: NULL needs the variable-length text path
        tuples[f"size{j}"] = np.dtype(fmt).itemsize
        tuples[f"value{j}"] = column
    return _HEADER + tuples.tobytes() + _TRAILER
