"""Runs as xarray Datasets and netCDF files (through xarray's h5netcdf engine).

A run becomes one xarray Dataset with a dimension ``index`` (the results),
one variable per parameter (array parameters get extra dimensions
``<name>_dim0``, ...), and attributes holding the run id, name, timestamps,
completion, metadata and the ParamSpecs as JSON, so reading a file back gives
the same run.  Missing values of types without NaN are kept in a boolean
companion variable ``<name>__missing``.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import RESERVED_TAGS
from .errors import FormatError
from .paramspec import ParamSpec

if TYPE_CHECKING:
    import xarray

    from .dataset import DataSet
    from .store import Store

MISSING_SUFFIX = "__missing"


def _require_xarray():
    try:
        import xarray
    except ImportError as exc:
        raise FormatError(
            "netCDF files need xarray and h5netcdf: pip install 'qdataset[netcdf]'"
        ) from exc
    return xarray


def to_xarray(dataset: DataSet) -> xarray.Dataset:
    """The run as an xarray Dataset (dimension ``index``; setpoints as coordinates).

    >>> xds = to_xarray(ds); xds["y"].plot()
    """
    xr = _require_xarray()
    specs = dataset.get_parameters()
    variables: dict[str, Any] = {}
    for spec in specs:
        if spec.is_variable_length:
            raise FormatError(
                f"parameter {spec.name!r} has variable-length values, which netCDF/xarray "
                "cannot hold; keep this run in a .db file"
            )
    arrays = dataset.get_data(*specs) if specs else []
    for spec, values in zip(specs, arrays, strict=True):
        dims = ("index", *(f"{spec.name}_dim{i}" for i in range(len(spec.shape))))
        if isinstance(values, np.ma.MaskedArray):
            missing = np.ma.getmaskarray(values)
            variables[spec.name + MISSING_SUFFIX] = (dims, missing)
            values = values.data
        if spec.type.kind == "U":
            values = values.astype(str)
        variables[spec.name] = (dims, np.asarray(values), {"units": spec.unit,
                                                          "long_name": spec.label or spec.name})
    completed_at = dataset.completed_at
    metadata = {tag: value for tag, value in dataset.get_metadata().items()
                if tag not in RESERVED_TAGS}
    attrs = {
        "qdataset_run_id": dataset.id,
        "qdataset_name": dataset.name,
        "qdataset_created_at": dataset.created_at,
        "qdataset_completed_at": -1.0 if completed_at is None else completed_at,
        "qdataset_specs": json.dumps([s.to_dict() for s in specs]),
        "qdataset_metadata": json.dumps(metadata),
    }
    xds = xr.Dataset(variables, attrs=attrs)
    setpoints = [s.name for s in specs if s.role == "setpoint"]
    return xds.set_coords(setpoints) if setpoints else xds


def write_netcdf(dataset: DataSet, path: str | os.PathLike) -> None:
    """Write the run to a netCDF-4 file (complex values need h5netcdf's extension)."""
    xds = to_xarray(dataset)
    complex_values = any(v.dtype.kind == "c" for v in xds.variables.values())
    try:
        with warnings.catch_warnings():
            # Complex values use h5netcdf's documented extension (readable with
            # h5netcdf/h5py and xarray, not by strict netCDF-4 tools): a known choice.
            warnings.filterwarnings("ignore", "You are writing invalid netcdf features")
            xds.to_netcdf(path, engine="h5netcdf", invalid_netcdf=complex_values)
    except (ImportError, ValueError) as exc:
        raise FormatError(f"cannot write {os.fspath(path)!r} as netCDF ({exc}); "
                          "pip install 'qdataset[netcdf]'") from exc


def read_netcdf(path: str | os.PathLike, store: Store | None = None) -> DataSet:
    """Import a file written by :func:`write_netcdf` into ``store`` (default store).

    The run keeps its id; if the store already has it, that run is returned.
    """
    xr = _require_xarray()
    from .errors import RunNotFoundError
    from .store import default_store
    from .store.codec import ColumnCodec

    store = store or default_store()
    try:
        xds = xr.open_dataset(path, engine="h5netcdf")
    except (OSError, ValueError, ImportError) as exc:
        raise FormatError(f"cannot read {os.fspath(path)!r} as netCDF ({exc})") from exc
    with xds:
        attrs = xds.attrs
        if "qdataset_run_id" not in attrs:
            raise FormatError(f"{os.fspath(path)!r} was not written by qdataset; "
                              "open it with xarray.open_dataset instead")
        run_id = str(attrs["qdataset_run_id"])
        try:
            return store.read_dataset(run_id)
        except RunNotFoundError:
            pass
        specs = [ParamSpec.from_dict(d) for d in json.loads(attrs["qdataset_specs"])]
        count = xds.sizes.get("index", 0)
        columns = []
        for spec in specs:
            values = xds[spec.name].values
            missing_name = spec.name + MISSING_SUFFIX
            codec = ColumnCodec(spec)
            if missing_name in xds:  # missing values stay missing, optional or not
                missing = xds[missing_name].values.reshape(count, -1).any(axis=1)
                columns.append([None if gone else codec.encode(v)
                                for v, gone in zip(values, missing, strict=True)])
            else:
                columns.append(codec.encode_column(values, rows=count))
        completed_at = float(attrs["qdataset_completed_at"])
        store.import_run(run_id, str(attrs["qdataset_name"]),
                         float(attrs["qdataset_created_at"]), specs, columns, count,
                         json.loads(attrs["qdataset_metadata"]),
                         completed_at if completed_at >= 0 else None)
    return store.read_dataset(run_id)
