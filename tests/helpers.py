"""Test helpers: compare the full contents of a run before and after an operation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def plain(array: np.ndarray) -> list[Any]:
    """A comparable Python list: masked entries -> None, NaN -> "nan", arrays -> lists."""
    if isinstance(array, np.ma.MaskedArray):
        values = array.tolist()
    elif array.dtype == object:
        values = [None if v is None else np.asarray(v).tolist() for v in array]
    else:
        values = array.tolist()
    return [_nan_free(v) for v in values]


def _nan_free(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, complex):
        return ("nan" if math.isnan(value.real) else value.real,
                "nan" if math.isnan(value.imag) else value.imag)
    return value


def snapshot(ds) -> tuple[int, dict[str, list[Any]]]:
    """(length, {name: values}) of every parameter of ``ds``."""
    names = [s.name for s in ds.get_parameters()]
    arrays = ds.get_data(*names) if names else []
    return ds.length, {n: plain(a) for n, a in zip(names, arrays, strict=True)}


def stored(store, run_id: str) -> tuple[int, dict[str, list[Any]]]:
    """The run's contents as the database holds them, read through a fresh view."""
    return snapshot(store.read_dataset(run_id))
