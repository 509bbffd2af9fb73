"""numpy values <-> database column values, one parameter at a time.

A :class:`ColumnCodec` validates and converts single values on the write path
(``encode``), whole numpy columns on the bulk path (``encode_column``), and
turns a fetched column back into one numpy array (``decode``).  Scalars of
kinds f/i/u/b/U map to native SQL types; everything else (complex, arrays,
datetimes, records, bytes) is stored as the raw bytes of the value and decoded
with a single ``np.frombuffer`` over the whole column, never a per-element
Python loop and never pickle.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import LengthMismatchError, MissingValueError, ShapeError, ValueTypeError
from ..paramspec import ParamSpec, dtype_to_json

_INT64 = np.iinfo(np.int64)

#: numpy kinds of the values each parameter kind accepts (bool is never a number).
_SOURCE_KINDS = {
    "f": "iuf", "i": "iu", "u": "iu", "b": "b", "U": "U", "S": "S",
    "c": "iufc", "M": "M", "m": "m", "V": "V",
}


def columns_of(rows: Sequence[Sequence[Any]], count: int, skip: int = 0) -> list[list[Any]]:
    """Transpose rows into ``count`` column lists, leaving out the first ``skip`` fields.

    One list comprehension per column: ``zip(*rows)`` would unpack every row
    as an argument, several times slower for large batches (and
    ``map(itemgetter(i), rows)`` measured slower than the comprehension).
    """
    return [[row[i] for row in rows] for i in range(skip, skip + count)]


def is_masked(values: Any) -> bool:
    """Whether ``values`` is a numpy masked array.  A plain ndarray is answered
    without touching ``np.ma``, which numpy 2 imports on first use (13 ms here):
    reads without missing values never pay for it."""
    return type(values) is not np.ndarray and isinstance(values, np.ma.MaskedArray)


def as_list(values: Any) -> list:
    """Python values for the DBAPI: numpy arrays become lists in C."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


def float_matrix(rows: Iterable[Sequence[Any]], count: int, width: int) -> np.ndarray:
    """``count`` rows of ``width`` floats as one ``(count, width)`` array, streamed into
    numpy in a single pass (no list per column or per row).  Raises TypeError on a
    None and ValueError when there are fewer values than that."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64,
                       count=count * width)
    return flat.reshape(count, width)


def number_kinds(specs: Sequence[ParamSpec]) -> list[str | None]:
    """Per spec, the numpy kind when its values are stored as plain numbers (float,
    int, bool), else None: what PostgreSQL's binary COPY can carry."""
    return [ColumnCodec(s).number_kind for s in specs]


class _NoValue:
    """A type no value has: ``stored_as_is`` of codecs that always encode."""


class ColumnCodec:
    """Encoder/decoder for the values of one parameter."""

    def __init__(self, spec: ParamSpec) -> None:
        self.spec = spec
        self.dtype = spec.type
        self.native = not spec.is_array and self.dtype.kind in "fiubUS"
        self.encode: Callable[[Any], Any] = self._make_encoder()
        #: Values of exactly this type are stored as they are (``encode`` returns
        #: them unchanged), so the row-by-row path may skip the call.
        self.stored_as_is: type = (
            float if self.native and self.dtype.kind == "f"
            else str if self.native and self.dtype.kind == "U" else _NoValue)

    @property
    def number_kind(self) -> str | None:
        """The numpy kind if values are stored as plain numbers (float, int, bool), else None."""
        kind = self.dtype.kind
        return kind if self.native and kind in "fiub" else None

    # -- single values ----------------------------------------------------
    def _make_encoder(self) -> Callable[[Any], Any]:
        spec, kind = self.spec, self.dtype.kind
        if spec.is_array:
            return self._encode_array
        if kind == "f":
            return self._encode_float
        if kind in "iu":
            info = np.iinfo(self.dtype)
            low, high = info.min, min(info.max, _INT64.max)
            return lambda v: self._encode_int(v, low, high)
        if kind == "b":
            return self._encode_bool
        if kind == "U":
            return self._encode_str
        if kind == "S":
            return self._encode_bytes
        return self._encode_raw_scalar

    def _wrong_type(self, value: Any, expected: str) -> ValueTypeError:
        return ValueTypeError(
            f"parameter {self.spec.name!r} expects {expected} "
            f"({dtype_to_json(self.dtype)}), got {type(value).__name__} {value!r:.60}"
        )

    def _encode_float(self, value: Any) -> float:
        if type(value) is float:
            return value
        if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            return float(value)
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
            return float(value)
        raise self._wrong_type(value, "a real number")

    def _encode_int(self, value: Any, low: int, high: int) -> int:
        if type(value) is not int:
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
                if not (isinstance(value, np.ndarray) and value.shape == ()
                        and value.dtype.kind in "iu"):
                    raise self._wrong_type(value, "an integer")
            value = int(value)
        if not low <= value <= high:
            raise ValueTypeError(
                f"parameter {self.spec.name!r}: {value} is outside the range of "
                f"{self.dtype} [{low}, {high}]; use a wider integer type or float64"
            )
        return value

    def _encode_bool(self, value: Any) -> int:
        if isinstance(value, bool | np.bool_):
            return int(value)
        raise self._wrong_type(value, "a bool")

    def _encode_str(self, value: Any) -> str:
        if isinstance(value, str):
            return str(value)
        raise self._wrong_type(value, "a str")

    def _encode_bytes(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return bytes(value)
        raise self._wrong_type(value, "bytes")

    def _encode_raw_scalar(self, value: Any) -> bytes:
        if self.dtype.kind == "c" and not isinstance(value, numbers.Number | np.ndarray):
            raise self._wrong_type(value, "a complex number")
        try:
            array = np.asarray(value)
        except Exception as exc:  # noqa: BLE001 - anything numpy rejects is a type error
            raise self._wrong_type(value, "a scalar") from exc
        if array.shape != ():
            raise ShapeError(
                f"parameter {self.spec.name!r} is a scalar; got an array of shape "
                f"{array.shape}. Declare shape= in its ParamSpec for array values"
            )
        self._check_cast(array, value)
        return array.astype(self.dtype).tobytes()

    def _check_cast(self, array: np.ndarray, value: Any) -> None:
        """Accept the same source kinds as the bulk path; integers must fit the dtype."""
        kind, source = self.dtype.kind, array.dtype
        if array.size == 0:
            return  # nothing to convert; numpy calls [] float64
        if source.kind not in _SOURCE_KINDS[kind] or (kind == "V" and source != self.dtype):
            raise self._wrong_type(value, f"values castable to {self.dtype}")
        if kind in "iu" and source != self.dtype:
            self._check_int_range(array, np.iinfo(self.dtype).max)

    def _check_int_range(self, array: np.ndarray, high: int) -> None:
        info = np.iinfo(self.dtype)
        if array.size and (array.min() < info.min or array.max() > high):
            raise ValueTypeError(
                f"parameter {self.spec.name!r}: values outside the range of {self.dtype} "
                f"[{info.min}, {high}]; use a wider integer type or float64"
            )

    def _encode_array(self, value: Any) -> bytes:
        if isinstance(value, str | bytes) or value is None:
            raise self._wrong_type(value, f"an array of shape {self.spec.shape}")
        try:
            array = np.asarray(value)
        except Exception as exc:  # noqa: BLE001
            raise self._wrong_type(value, f"an array of shape {self.spec.shape}") from exc
        self._check_cast(array, value)
        self._check_shape(array.shape)
        return np.ascontiguousarray(array, dtype=self.dtype).tobytes()

    def _check_shape(self, shape: tuple[int, ...], rows: int | None = None) -> None:
        expected = self.spec.shape
        value_shape = shape if rows is None else shape[1:]
        ok = len(value_shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, value_shape, strict=True)
        )
        if not ok:
            want = tuple("any" if e is None else e for e in expected)
            what = "each value" if rows is None else f"each of the {rows} values"
            raise ShapeError(
                f"parameter {self.spec.name!r}: {what} must have shape {want}, "
                f"got {value_shape}"
            )

    # -- whole columns (bulk path) -----------------------------------------
    def encode_column(self, values: Any, rows: int | None = None) -> Sequence[Any]:
        """Validate a whole column and return its database values (a list or array).

        ``rows`` is the number of results the column must hold (None: any).
        """
        spec = self.spec
        if spec.is_variable_length or isinstance(values, list | tuple):
            # Ragged values and Python lists: one value at a time, so a list that
            # numpy would silently coerce (True among floats, 5 among strings) is
            # checked exactly like add_result checks it.
            encoded = [None if v is None else self.encode(v) for v in values]
            self._check_rows(len(encoded), rows)
            if not spec.optional and None in encoded:
                raise MissingValueError(
                    f"parameter {spec.name!r} is not optional but its values contain None "
                    f"(first at position {encoded.index(None)}); give every value, or "
                    "declare it ParamSpec(..., optional=True)"
                )
            return encoded
        try:
            array = np.asarray(values)
        except Exception as exc:  # noqa: BLE001
            raise self._wrong_type(values, "an array of values") from exc
        if array.ndim == 0:
            raise self._wrong_type(values, "a sequence of values, one per result")
        self._check_rows(len(array), rows)
        self._check_column_dtype(array)
        self._check_shape(array.shape, rows=len(array))
        kind = self.dtype.kind
        if spec.is_array or not self.native:
            if kind in "iu" and array.dtype != self.dtype:
                self._check_int_range(array, np.iinfo(self.dtype).max)
            array = np.ascontiguousarray(array, dtype=self.dtype)
            itemsize = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
            # A void view turns each row into one bytes object in C.
            return array.reshape(len(array), -1).view(np.dtype((np.void, itemsize))).ravel()
        if kind == "f":
            return array.astype(np.float64, copy=False)
        if kind in "iu":
            self._check_int_range(array, min(np.iinfo(self.dtype).max, _INT64.max))
            return array.astype(np.int64, copy=False)
        if kind == "b":
            return array.astype(np.int64)
        if kind == "S":
            return array.tolist()
        return array.astype(str)

    def _encode_or_none(self, value: Any) -> Any:
        return None if value is None else self.encode(value)

    def _check_rows(self, count: int, rows: int | None) -> None:
        if rows is not None and count != rows:
            raise LengthMismatchError(
                f"parameter {self.spec.name!r} has {count} values but {rows} are needed; "
                "give every parameter the same number of values"
            )

    def _check_column_dtype(self, array: np.ndarray) -> None:
        kind, source = self.dtype.kind, array.dtype
        if source.kind not in _SOURCE_KINDS[kind] or (kind == "V" and source != self.dtype):
            raise ValueTypeError(
                f"parameter {self.spec.name!r} expects {dtype_to_json(self.dtype)} values, "
                f"got an array of {source}"
            )

    # -- reading -------------------------------------------------------------
    def empty(self) -> np.ndarray:
        """A zero-length result array of the right dtype and shape."""
        shape = tuple(0 if d is None else d for d in self.spec.shape)
        if self.spec.is_variable_length:
            return np.empty(0, dtype=object)
        return np.empty((0, *shape), dtype=self._result_dtype())

    def _result_dtype(self) -> np.dtype:
        return {"U": np.dtype("U1"), "S": np.dtype("S1")}.get(self.dtype.kind, self.dtype)

    def decode(self, column: Sequence[Any]) -> np.ndarray:
        """One numpy array from a column of database values (None = missing)."""
        if not len(column):
            return self.empty()
        has_null = None in column if not self._float_native() else False
        if self.spec.is_variable_length:
            return self._decode_variable(column)
        if self.native:
            return self._decode_native(column, has_null)
        if has_null:
            return self._decode_raw_with_nulls(column)
        flat = np.frombuffer(b"".join(column), dtype=self.dtype)
        return flat.reshape((len(column), *self.spec.shape))

    def _float_native(self) -> bool:
        return self.native and self.dtype.kind == "f"

    def _decode_native(self, column: Sequence[Any], has_null: bool) -> np.ndarray:
        kind = self.dtype.kind
        if kind == "f":
            # numpy turns None into NaN for float targets.
            return np.array(column, dtype=self.dtype)
        target = {"U": str, "S": bytes}.get(kind, self.dtype)
        if not has_null:
            return np.array(column, dtype=target)
        mask = np.fromiter((v is None for v in column), dtype=bool, count=len(column))
        filler: Any = {"U": "", "S": b""}.get(kind, 0)
        array = np.array([filler if v is None else v for v in column], dtype=target)
        return np.ma.MaskedArray(array, mask=mask)

    def _decode_raw_with_nulls(self, column: Sequence[Any]) -> np.ndarray:
        shape = self.spec.shape
        item = np.zeros(shape or (), dtype=self.dtype)
        if self.dtype.kind == "c":
            item[...] = complex(np.nan, np.nan)  # NaN in both parts, as documented
        elif self.dtype.kind == "f":
            item[...] = np.nan
        filler = item.tobytes()
        mask = np.fromiter((v is None for v in column), dtype=bool, count=len(column))
        flat = np.frombuffer(b"".join(filler if v is None else v for v in column),
                             dtype=self.dtype)
        array = flat.reshape((len(column), *shape))
        if self.dtype.kind in "fc":
            return array  # NaN marks the missing values
        full_mask = np.broadcast_to(mask.reshape((-1,) + (1,) * len(shape)), array.shape)
        return np.ma.MaskedArray(array, mask=full_mask)

    def _decode_variable(self, column: Sequence[Any]) -> np.ndarray:
        tail = self.spec.shape[1:]
        out = np.empty(len(column), dtype=object)
        for i, blob in enumerate(column):
            if blob is not None:
                out[i] = np.frombuffer(blob, dtype=self.dtype).reshape((-1, *tail))
        return out
