"""qdataset: a measurement database for physics and quantum labs.

>>> import numpy as np
>>> from qdataset import DataSet, ParamSpec, connect
>>> store = connect("sqlite:///lab.db")
>>> ds = DataSet("sweep", [ParamSpec("x", np.float64, role="setpoint"),
...                        ParamSpec("y", np.float64, depends_on=["x"])], store=store)
>>> ds.add_result(x=0.1, y=2.0)
0
>>> xs, ys = ds.get_data("x", "y")

Heavy modules (SQLAlchemy, pandas, qiskit) load on first use, so
``import qdataset`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _wiring
from ._lazy import lazy_attributes
from .errors import (
    AmbiguousRunError,
    CompletedError,
    DuplicateParameterError,
    FlushError,
    FormatError,
    IndexRangeError,
    InvalidArgumentError,
    InvalidCallbackError,
    InvalidParamSpecError,
    LengthMismatchError,
    MetadataError,
    MissingValueError,
    QDatasetError,
    ReadOnlyError,
    RunExistsError,
    RunNotFoundError,
    SchemaVersionError,
    ShapeError,
    StorageLimitError,
    StoreClosedError,
    StoreError,
    StoreUnavailableError,
    UnknownParameterError,
    UnknownSubscriptionError,
    ValueTypeError,
    WriterActiveError,
)
from .paramspec import ParamSpec

__version__ = "0.1.0"

# name -> module; loaded on first attribute access (PEP 562).
_LAZY = {
    "DataSet": ".dataset",
    "Cursor": ".cursor",
    "Store": ".store",
    "RunInfo": ".store",
    "connect": ".store",
    "read_dataset": ".io",
    "write_dataset": ".io",
    "dataframe_from_dataset": ".io",
    "import_qcodes": ".qcodes_import",
}

if TYPE_CHECKING:
    from .cursor import Cursor
    from .dataset import DataSet
    from .io import dataframe_from_dataset, read_dataset, write_dataset
    from .qcodes_import import import_qcodes
    from .store import RunHandle, RunInfo, Store, connect


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


def _open_dataset(store: Store, handle: RunHandle) -> DataSet:
    from .dataset import DataSet

    return DataSet.from_handle(store, handle)


# This module is the composition root: it lets the storage package hand out
# DataSets (Store.read_dataset) without importing the layer above it.
_wiring.open_dataset = _open_dataset


__all__ = [
    "AmbiguousRunError",
    "CompletedError",
    "Cursor",
    "DataSet",
    "DuplicateParameterError",
    "FlushError",
    "FormatError",
    "IndexRangeError",
    "InvalidArgumentError",
    "InvalidCallbackError",
    "InvalidParamSpecError",
    "LengthMismatchError",
    "MetadataError",
    "MissingValueError",
    "ParamSpec",
    "QDatasetError",
    "ReadOnlyError",
    "RunExistsError",
    "RunInfo",
    "RunNotFoundError",
    "SchemaVersionError",
    "ShapeError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailableError",
    "StorageLimitError",
    "UnknownParameterError",
    "UnknownSubscriptionError",
    "ValueTypeError",
    "WriterActiveError",
    "connect",
    "dataframe_from_dataset",
    "import_qcodes",
    "read_dataset",
    "write_dataset",
]
