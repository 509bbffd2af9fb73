"""The experiment's DataSet layout: one row per circuit (per register, per sweep point).

An experiment's data dicts (what ``exp.data()`` returns, as in qiskit-experiments)
are stored as rows of an ordinary qdataset run, so numpy reads, cursors and
subscriptions work on them:

=============  ========  ==========================================================
column         dtype     meaning
=============  ========  ==========================================================
job_id         str       the job that produced the row (empty for ``add_data`` dicts)
circuit_index  int64     index of the circuit / pub in its job
kind           str       "counts" (backend result), "sampler", "estimator" or "data"
register       str       classical register (SamplerV2 rows)
loc            str       JSON index of the parameter-sweep point (primitive rows)
counts         str       JSON object bitstring -> count
shots          int64     shots
meas_level     int64     measurement level (2: classified bits)
evs, stds      float64   EstimatorV2 expectation value and standard deviation
metadata       str       JSON circuit metadata
memory         str       JSON per-shot memory, when the job recorded it
extra          str       JSON of every other key of the data dict
=============  ========  ==========================================================

Everything but ``kind`` is optional: a missing value is null (NaN for floats,
masked in the arrays ``get_data`` returns).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..paramspec import ParamSpec
from . import serialization
from .errors import ExperimentEntryNotFound, InvalidIndexError

_STR, _INT, _FLOAT = np.str_, np.int64, np.float64

#: (name, dtype, how the dict value is stored: "str", "int", "float" or "json")
COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("job_id", _STR, "str"),
    ("circuit_index", _INT, "int"),
    ("kind", _STR, "str"),
    ("register", _STR, "str"),
    ("loc", _STR, "json"),
    ("counts", _STR, "json"),
    ("shots", _INT, "int"),
    ("meas_level", _INT, "int"),
    ("evs", _FLOAT, "float"),
    ("stds", _FLOAT, "float"),
    ("metadata", _STR, "json"),
    ("memory", _STR, "json"),
)
EXTRA = "extra"
NAMES = tuple(name for name, _, _ in COLUMNS) + (EXTRA,)


def data_specs() -> list[ParamSpec]:
    """The ParamSpecs of an experiment's DataSet."""
    specs = [ParamSpec(name, dtype, optional=(name != "kind")) for name, dtype, _ in COLUMNS]
    specs.append(ParamSpec(EXTRA, _STR, optional=True))
    return specs


def _fits(how: str, value: Any) -> bool:
    if how == "str":
        return isinstance(value, str)
    if how == "int":
        return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if how == "float":
        return isinstance(value, float | int | np.floating | np.integer) and not isinstance(
            value, bool | np.bool_)
    return True


def encode(data: Mapping[str, Any]) -> dict[str, Any]:
    """The row (column name -> stored value) for one data dict; None values are left out."""
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        spec = _HOW.get(key)
        if value is None:
            continue
        if spec is None or not _fits(spec, value):
            extra[key] = value
        elif spec == "json":
            row[key] = json.dumps(serialization.plain(value))
        elif spec == "int":
            row[key] = int(value)
        elif spec == "float":
            row[key] = float(value)
        else:
            row[key] = value
    row.setdefault("kind", "data")
    if extra:
        row[EXTRA] = serialization.dumps(extra)
    return row


def decode(values: Sequence[Any]) -> dict[str, Any]:
    """The data dict of one stored row (values in :data:`NAMES` order, None for null)."""
    data: dict[str, Any] = {}
    for (name, _, how), value in zip(COLUMNS, values[:-1], strict=True):
        if value is None:
            continue
        if how == "json":
            value = json.loads(value)
            if name == "loc":
                value = tuple(value)
        data[name] = value
    if data.get("kind") == "data":
        del data["kind"]
    if values[-1] is not None:
        data.update(serialization.loads(values[-1]))
    return data


def columns_to_values(columns: Sequence[np.ndarray]) -> list[list[Any]]:
    """Row-wise Python values (None for null) from the arrays ``get_data`` returned."""
    out: list[list[Any]] = []
    if not columns:
        return out
    prepared = []
    for (_, _, how), array in zip((*COLUMNS, (EXTRA, _STR, "json")), columns, strict=True):
        mask = np.ma.getmaskarray(array)
        data = np.ma.getdata(array)
        if how == "float":
            mask = mask | np.isnan(data)
        items = data.tolist()
        prepared.append([None if m else v for v, m in zip(items, mask.tolist(), strict=True)])
    for i in range(len(prepared[0])):
        out.append([col[i] for col in prepared])
    return out


_HOW = {name: how for name, _, how in COLUMNS}


class DataRows:
    """The experiment's data rows in its DataSet: the only part that touches it.

    Thread-safe through the DataSet's own locks; the experiment never holds
    its locks while calling here, since adding rows may write to the database.

    >>> rows = DataRows(dataset)
    >>> rows.add([{"counts": {"0": 5}, "shots": 5}])
    >>> rows.read(0, 1)
    [{'counts': {'0': 5}, 'shots': 5}]
    """

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset
        self._seen_rows = False  # once true, stays true: rows are never removed

    @property
    def dataset(self) -> Any:
        return self._dataset

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Encode and append data dicts (nothing happens for an empty list).

        A loaded experiment holds a read-only view of its run; its first new rows
        resume the run (``store.resume_dataset``), which works once the process
        that wrote it is gone and raises WriterActiveError while it lives."""
        encoded = [encode(row) for row in rows]
        if encoded:
            if not self._dataset.is_writer:
                self._dataset = self._dataset.store.resume_dataset(self._dataset.id)
            self._dataset.add_results(encoded)
            self._seen_rows = True

    def read(self, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        """The data dicts of rows ``start <= i < end``."""
        columns = self._dataset.get_data(*NAMES, start=start, end=end)
        return [decode(values) for values in columns_to_values(columns)]

    def select(self, index: int | slice | str | None, owner: str) -> Any:
        """All data dicts (None), one (int), some (slice) or those of a job (job id)."""
        if index is None or isinstance(index, slice | str):
            rows = self.read()
            if index is None:
                return rows
            if isinstance(index, slice):
                return rows[index]
            return [row for row in rows if row.get("job_id") == index]
        if isinstance(index, int):
            length = self._dataset.length
            position = index + length if index < 0 else index
            if not 0 <= position < length:
                raise ExperimentEntryNotFound(
                    f"experiment {owner} has {length} data rows, so index {index} does not "
                    "exist; use exp.data() to see them all")
            return self.read(position, position + 1)[0]
        raise InvalidIndexError(
            f"data index must be int, slice, job id or None, not {type(index).__name__}")

    @property
    def length(self) -> int:
        return self._dataset.length

    def has_rows(self) -> bool:
        """True once the run has a row (a live view may ask the database)."""
        if not self._seen_rows and self._dataset.length:
            self._seen_rows = True
        return self._seen_rows

    def flush(self) -> None:
        """Write rows buffered by this process, so other processes see them."""
        flush = getattr(self._dataset, "flush", None)
        if callable(flush):
            flush()
