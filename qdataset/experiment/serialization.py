"""JSON for experiment values: numpy scalars and arrays, complex numbers.

Plain JSON types pass through unchanged.  Complex numbers and numpy arrays
are tagged so that :func:`loads` gives them back as they were:

>>> loads(dumps({"z": 1 + 2j, "a": np.arange(3)}))
{'z': (1+2j), 'a': array([0, 1, 2])}
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import UnsupportedResultError

_COMPLEX = "__complex__"
_NDARRAY = "__ndarray__"


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":
            data = [[float(z.real), float(z.imag)] for z in value.ravel()]
        else:
            data = value.ravel().tolist()
        return {_NDARRAY: data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, complex | np.complexfloating):
        return {_COMPLEX: [float(value.real), float(value.imag)]}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "tolist"):  # other numpy-like objects
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise UnsupportedResultError(
        f"{type(value).__name__} is not JSON-serialisable; store numbers, strings, lists, "
        "dicts, complex numbers or numpy values")


def _hook(obj: dict[str, Any]) -> Any:
    if _COMPLEX in obj and len(obj) == 1:
        re, im = obj[_COMPLEX]
        return complex(re, im)
    if _NDARRAY in obj and set(obj) == {_NDARRAY, "dtype", "shape"}:
        dtype = np.dtype(obj["dtype"])
        data = obj[_NDARRAY]
        if dtype.kind == "c":
            data = [complex(re, im) for re, im in data]
        return np.asarray(data, dtype=dtype).reshape(obj["shape"])
    return obj


def dumps(value: Any) -> str:
    """JSON text for ``value`` (numpy and complex values are tagged)."""
    try:
        return json.dumps(value, default=_default, allow_nan=True)
    except UnsupportedResultError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. non-string dict keys, circular references
        raise UnsupportedResultError(
            f"cannot store {type(value).__name__} as JSON ({exc}); use string keys and "
            "plain values") from exc


def loads(text: str | None) -> Any:
    """The value :func:`dumps` encoded (None stays None)."""
    if text is None:
        return None
    return json.loads(text, object_hook=_hook)


def plain(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays become Python)."""
    return json.loads(json.dumps(value, default=_plain_default, allow_nan=True))


def _plain_default(value: Any) -> Any:
    if isinstance(value, complex | np.complexfloating):
        return [float(value.real), float(value.imag)]
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        return [[float(z.real), float(z.imag)] for z in value.ravel()]
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        return _default(value)
    except UnsupportedResultError:
        return repr(value)
