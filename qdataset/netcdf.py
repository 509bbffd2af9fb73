"""Runs as xarray Datasets and netCDF files (through xarray's h5netcdf engine).

Two shapes of the same run:

* :func:`to_xarray`, for analysis: when the setpoints form a grid
  (:mod:`qdataset.gridding`) they are the dimensions, so ``xds["G"].plot()``
  draws an image over the two gates; otherwise the results lie along
  ``index`` with the setpoints as coordinates.  ``long_name`` and ``units``
  come from each parameter's label and unit; array-valued parameters get
  dimensions of their own (named after a 1-D array setpoint they depend on,
  else ``<name>_dim_<k>``).

* :func:`write_netcdf`, for files: every result row as it is stored, in
  order, along one dimension.  With setpoints, that dimension is
  ``multi_index``, holding each row's position in the setpoints' grid of
  distinct values (CF "compression by gathering", as QCoDeS writes it), so
  QCoDeS's ``load_from_netcdf`` and ``cf_xarray.decode_compress_to_multi_index``
  read it; the file also carries the run attributes QCoDeS reads (guid,
  captured_run_id, exp_name, sample_name, run_description, ...).  Values are
  gzip-compressed, so parameters missing from most rows cost next to nothing.
  Missing values of types without NaN are flagged per row in a boolean
  companion variable ``<name>__missing``; ``qdataset_*`` attributes hold the
  run id, name, timestamps, metadata and ParamSpecs, so reading the file
  back gives the same run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import RESERVED_TAGS
from .errors import FormatError
from .gridding import find_grid, setpoint_names, with_missing
from .paramspec import ParamSpec

if TYPE_CHECKING:
    import xarray

    from .dataset import DataSet
    from .store import Store

MISSING_SUFFIX = "__missing"

#: The row dimension of files whose rows have setpoints (QCoDeS's name for it).
ROWS_BY_SETPOINTS = "multi_index"

#: gzip level of netCDF variables.  Measured on 10,000 rows with an optional
#: 1000-float array never given (80 MB uncompressed): level 1 0.54 MB, 4 0.26 MB,
#: 9 0.26 MB and slower; the demo's 40,000-row sweep: 0.33 MB at every level.
COMPRESSION_LEVEL = 4

_COMPRESSIBLE_KINDS = set("biufcMm")


def _require_xarray():
    try:
        import xarray
    except ImportError as exc:
        raise FormatError(
            "netCDF files and to_xarray need xarray and h5netcdf: "
            "pip install 'qdataset[netcdf]'"
        ) from exc
    return xarray


# -- analysis view --------------------------------------------------------------------

def to_xarray(dataset: DataSet) -> xarray.Dataset:
    """The run as an xarray Dataset: setpoints as dimensions when they form a grid
    (complete, or swept up to a partly filled last row), else along ``index``.

    Cells of a partly filled grid are NaN (integers and bools then become floats).

    >>> xds = to_xarray(ds); xds["conductance"].plot()   # an image over gate1, gate2
    """
    xr = _require_xarray()
    specs, columns = _read_columns(dataset)
    rows = dataset_length(columns)
    setpoints = [s for s in specs if s.name in setpoint_names(specs) and not s.is_array]
    grid = (find_grid({s.name: columns[s.name] for s in setpoints}) if setpoints and rows
            else None)
    array_dims, constant = _array_dims(specs, columns)
    variables: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if grid is not None:
        row_dims: tuple[str, ...] = grid.dims
        place: Callable[[np.ndarray], np.ndarray] = grid.fill
        by_name = {s.name: s for s in specs}
        for dim, values in zip(grid.dims, grid.coords, strict=True):
            coords[dim] = (dim, values, _attrs(by_name[dim]))
    else:
        row_dims = ("index",)
        place = with_missing
        coords["index"] = ("index", np.arange(rows))
    for spec in specs:
        if grid is not None and spec.name in grid.dims:
            continue
        values = columns[spec.name]
        if spec.name in constant:
            coords[spec.name] = (array_dims[spec.name], constant[spec.name], _attrs(spec))
            continue
        entry = (row_dims + array_dims[spec.name], place(values), _attrs(spec))
        if spec.name in setpoint_names(specs):
            coords[spec.name] = entry
        else:
            variables[spec.name] = entry
    return xr.Dataset(variables, coords=coords, attrs=_run_attrs(dataset, specs))


def dataset_length(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _read_columns(dataset: DataSet) -> tuple[list[ParamSpec], dict[str, np.ndarray]]:
    specs = dataset.get_parameters()
    for spec in specs:
        if spec.is_variable_length:
            raise FormatError(
                f"parameter {spec.name!r} has variable-length values, which netCDF/xarray "
                "cannot hold; keep this run in a .db file"
            )
    arrays = dataset.get_data(*specs) if specs else []
    return specs, {s.name: a for s, a in zip(specs, arrays, strict=True)}


def _array_dims(specs: list[ParamSpec], columns: dict[str, np.ndarray]
                ) -> tuple[dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """Each parameter's own dimensions; and the 1-D array setpoints whose value is the
    same in every row (they become plain coordinates of their dimension)."""
    dims: dict[str, tuple[str, ...]] = {}
    constant: dict[str, np.ndarray] = {}
    axis_dim: dict[str, str] = {}  # 1-D array setpoint -> its dimension
    for spec in specs:
        if spec.name not in setpoint_names(specs) or len(spec.shape) != 1:
            continue
        values = columns[spec.name]
        if (len(values) and not np.ma.is_masked(values)
                and bool((np.asarray(values) == np.asarray(values)[0]).all())):
            constant[spec.name] = np.asarray(values)[0]
            axis_dim[spec.name] = spec.name
        else:
            axis_dim[spec.name] = f"{spec.name}_dim_0"
    by_name = {s.name: s for s in specs}
    for spec in specs:
        if spec.name in axis_dim:
            dims[spec.name] = (axis_dim[spec.name],)
            continue
        free = [d for d in spec.depends_on if d in axis_dim]
        own = []
        for k, length in enumerate(spec.shape):
            match = next((d for d in free if by_name[d].shape[0] == length), None)
            if match is None:
                own.append(f"{spec.name}_dim_{k}")
            else:
                free.remove(match)
                own.append(axis_dim[match])
        dims[spec.name] = tuple(own)
    return dims, constant


def _attrs(spec: ParamSpec) -> dict[str, str]:
    attrs = {"long_name": spec.label or spec.name}
    if spec.type.kind not in "Mm":  # xarray writes its own "units" for times
        attrs["units"] = spec.unit
    return attrs


# -- run attributes (qdataset's and QCoDeS's) ------------------------------------------

def _run_attrs(dataset: DataSet, specs: list[ParamSpec]) -> dict[str, Any]:
    completed_at = dataset.completed_at
    metadata = {tag: value for tag, value in dataset.get_metadata().items()
                if tag not in RESERVED_TAGS}
    number = getattr(dataset, "number", None)
    number = int(number) if isinstance(number, int | np.integer) else 1
    attrs: dict[str, Any] = {
        "qdataset_run_id": dataset.id,
        "qdataset_name": dataset.name,
        "qdataset_created_at": dataset.created_at,
        "qdataset_completed_at": -1.0 if completed_at is None else completed_at,
        "qdataset_specs": json.dumps([s.to_dict() for s in specs]),
        "qdataset_metadata": json.dumps(metadata),
    }
    # What QCoDeS's load_from_netcdf reads (its exporter's attribute names).
    attrs.update({
        "ds_name": dataset.name,
        "exp_name": str(getattr(dataset, "experiment", None) or ""),
        "sample_name": str(getattr(dataset, "sample", None) or ""),
        "guid": qcodes_guid(dataset.id),
        "captured_run_id": number,
        "captured_counter": number,
        "run_id": number,
        "run_timestamp": _timestamp_text(dataset.created_at),
        "completed_timestamp": "" if completed_at is None else _timestamp_text(completed_at),
        "run_timestamp_raw": dataset.created_at,
        "completed_timestamp_raw": -1.0 if completed_at is None else completed_at,
        "run_description": json.dumps(qcodes_run_description(specs)),
        "snapshot": json.dumps(metadata.get("snapshot")),
        "parent_dataset_links": "[]",
    })
    return attrs


def qcodes_guid(run_id: str) -> str:
    """The run's QCoDeS GUID: the id itself for runs imported from QCoDeS, else a
    UUID derived from the id (the same for every export of the run)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"qdataset:{run_id}"))


def qcodes_run_description(specs: list[ParamSpec]) -> dict[str, Any]:
    """A QCoDeS RunDescriber (version 0 layout, which QCoDeS upgrades on reading):
    every dependent depends on its depends_on, or on all setpoints if it names none."""
    setpoints = setpoint_names(specs)
    paramspecs = []
    for spec in specs:
        depends_on = [] if spec.name in setpoints else list(spec.depends_on or setpoints)
        paramspecs.append({"name": spec.name, "paramtype": _qcodes_type(spec),
                           "label": spec.label, "unit": spec.unit,
                           "inferred_from": [], "depends_on": depends_on})
    return {"version": 0, "interdependencies": {"paramspecs": paramspecs}}


def _qcodes_type(spec: ParamSpec) -> str:
    if spec.is_array:
        return "array"
    return {"c": "complex", "U": "text", "S": "text"}.get(spec.type.kind, "numeric")


def _timestamp_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


# -- files ----------------------------------------------------------------------------------

def write_netcdf(dataset: DataSet, path: str | os.PathLike) -> None:
    """Write the run to a netCDF-4 file, through a temporary file beside it that is
    renamed into place once complete (a failed write leaves nothing behind).

    Complex values use h5netcdf's extension (read by xarray/h5netcdf and QCoDeS).
    """
    xds = _file_dataset(dataset)
    complex_values = any(v.dtype.kind == "c" for v in xds.variables.values())
    encoding = {name: {"zlib": True, "complevel": COMPRESSION_LEVEL, "shuffle": True}
                for name, variable in xds.variables.items()
                if variable.dtype.kind in _COMPRESSIBLE_KINDS and variable.ndim}
    with replacing(path) as scratch:
        try:
            with warnings.catch_warnings():
                # Complex values use h5netcdf's documented extension (readable with
                # h5netcdf/h5py and xarray, not by strict netCDF-4 tools): a known choice.
                warnings.filterwarnings("ignore", "You are writing invalid netcdf features")
                xds.to_netcdf(scratch, engine="h5netcdf", invalid_netcdf=complex_values,
                              encoding=encoding)
        except ImportError as exc:
            raise FormatError(f"cannot write {os.fspath(path)!r} as netCDF ({exc}); "
                              "pip install 'qdataset[netcdf]'") from exc
        except (ValueError, TypeError, OSError) as exc:
            raise FormatError(f"cannot write run {dataset.id!r} to {os.fspath(path)!r} "
                              f"as netCDF: {exc}") from exc


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to ``path`` when the block succeeds
    and removed when it fails: readers never see a half-written file."""
    target = Path(os.fspath(path))
    scratch = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        yield scratch
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def _file_dataset(dataset: DataSet) -> xarray.Dataset:
    """Every row in order along one dimension (see the module docstring)."""
    xr = _require_xarray()
    import pandas as pd

    specs, columns = _read_columns(dataset)
    rows = dataset_length(columns)
    names = setpoint_names(specs)
    scalar_setpoints = [s for s in specs if s.name in names and not s.is_array]
    variables: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    levels: list[str] = []
    if scalar_setpoints and not any(np.ma.is_masked(columns[s.name])
                                    for s in scalar_setpoints):
        index = pd.MultiIndex.from_arrays([np.ma.getdata(columns[s.name])
                                           for s in scalar_setpoints])
        if all((np.asarray(c) >= 0).all() for c in index.codes):  # no NaN setpoints
            levels = [s.name for s in scalar_setpoints]
    if levels:
        row_dim = ROWS_BY_SETPOINTS
        index.names = levels
        for spec, level in zip(scalar_setpoints, index.levels, strict=True):
            values = np.asarray(level)
            if values.dtype != columns[spec.name].dtype:
                values = values.astype(columns[spec.name].dtype)
            coords[spec.name] = (spec.name, values, _attrs(spec))
        position = (np.ravel_multi_index(index.codes, index.levshape) if rows
                    else np.zeros(0, dtype=np.int64))
        coords[row_dim] = (row_dim, position, {"compress": " ".join(levels)})
    else:
        row_dim = "index"
        coords[row_dim] = (row_dim, np.arange(rows))
    for spec in specs:
        if spec.name in levels:
            continue
        dims = (row_dim, *(f"{spec.name}_dim_{k}" for k in range(len(spec.shape))))
        for k, length in enumerate(spec.shape):  # QCoDeS wants an index on every dim
            coords.setdefault(dims[k + 1], (dims[k + 1], np.arange(length)))
        values = columns[spec.name]
        if isinstance(values, np.ma.MaskedArray):
            variables[spec.name + MISSING_SUFFIX] = (
                (row_dim,), np.ma.getmaskarray(values).reshape(rows, -1).any(axis=1))
            values = np.ma.getdata(values)
        entry = (dims, np.asarray(values), _attrs(spec))
        if spec.name in names:
            coords[spec.name] = entry
        else:
            variables[spec.name] = entry
    return xr.Dataset(variables, coords=coords, attrs=_run_attrs(dataset, specs))


def read_netcdf(path: str | os.PathLike, store: Store | None = None) -> DataSet:
    """The run in a file written by :func:`write_netcdf`.

    With ``store`` the run is imported into it (once: if the store already has
    the run, that run is returned).  Without, nothing is stored anywhere: the run
    is returned from a private temporary store that is deleted together with the
    DataSet (``write_dataset(ds, store)`` keeps it).
    """
    xr = _require_xarray()
    from .errors import RunNotFoundError

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
        if store is not None:
            try:
                return store.read_dataset(run_id)
            except RunNotFoundError:
                pass
            _import(xds, store)
            return store.read_dataset(run_id)
    return _scratch_read(path, run_id)


def _scratch_read(path: str | os.PathLike, run_id: str) -> DataSet:
    from .store import connect

    folder = tempfile.mkdtemp(prefix="qdataset-file-")
    try:
        store = connect(Path(folder) / "file.db")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        xr = _require_xarray()
        with xr.open_dataset(path, engine="h5netcdf") as xds:
            _import(xds, store)
        dataset = store.read_dataset(run_id)
    except BaseException:
        _discard(store, folder)
        raise
    weakref.finalize(dataset, _discard, store, folder)
    return dataset


def _discard(store: Store, folder: str) -> None:
    try:
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _import(xds: xarray.Dataset, store: Store) -> None:
    from .store.codec import ColumnCodec

    attrs = xds.attrs
    specs = [ParamSpec.from_dict(d) for d in json.loads(attrs["qdataset_specs"])]
    row_dim = (ROWS_BY_SETPOINTS if ROWS_BY_SETPOINTS in xds.dims
               and "compress" in xds[ROWS_BY_SETPOINTS].attrs else "index")
    count = xds.sizes.get(row_dim, 0)
    level_rows: dict[str, np.ndarray] = {}
    if row_dim == ROWS_BY_SETPOINTS:
        levels = str(xds[row_dim].attrs["compress"]).split()
        shape = tuple(xds.sizes[name] for name in levels)
        positions = np.unravel_index(xds[row_dim].values.astype(np.intp), shape)
        level_rows = dict(zip(levels, positions, strict=True))
    columns = []
    for spec in specs:
        values = xds[spec.name].values
        if spec.name in level_rows:
            values = values[level_rows[spec.name]]
        if spec.type.kind in "Mm" and values.dtype != spec.type:
            values = values.astype(spec.type)
        missing_name = spec.name + MISSING_SUFFIX
        codec = ColumnCodec(spec)
        if missing_name in xds:  # missing values stay missing, optional or not
            missing = xds[missing_name].values.reshape(count, -1).any(axis=1)
            columns.append([None if gone else codec.encode(v)
                            for v, gone in zip(values, missing, strict=True)])
        else:
            columns.append(codec.encode_column(values, rows=count))
    completed_at = float(attrs["qdataset_completed_at"])
    number = attrs.get("captured_run_id")
    store.import_run(str(attrs["qdataset_run_id"]), str(attrs["qdataset_name"]),
                     float(attrs["qdataset_created_at"]), specs, columns, count,
                     json.loads(attrs["qdataset_metadata"]),
                     completed_at if completed_at >= 0 else None,
                     experiment=str(attrs.get("exp_name") or "") or None,
                     sample=str(attrs.get("sample_name") or "") or None,
                     number=None if number is None else int(number))
