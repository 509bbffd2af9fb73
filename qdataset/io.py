"""Persistence outside the DataSet: copies between stores, files, pandas."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatError, RunNotFoundError

if TYPE_CHECKING:
    import pandas

    from .dataset import DataSet
    from .store import Store

#: File suffixes read and written as SQLite databases.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def copy_dataset(dataset: DataSet, target: Store,
                 progress: Callable[[int], Any] | None = None) -> DataSet:
    """Copy a run into ``target``: same id, values, metadata and completion.

    Values move as stored (no decode/encode); ``progress(rows)`` is called
    after each chunk.  A copy that fails part-way is removed again, so a
    retry starts clean.
    """
    dataset.flush()
    target.copy_run_from(dataset.store, dataset.id, progress)
    return target.read_dataset(dataset.id)


def copy_runs(source: Store, target: Store, run_ids: Iterable[str] | None = None,
              show_progress: bool = True) -> tuple[list[str], list[str]]:
    """Copy runs (default: all) from ``source`` to ``target``, ids preserved.

    Runs already in ``target`` are skipped, so repeating a sync copies only
    what is new.  Returns (copied ids, skipped ids).

    >>> copy_runs(connect("sqlite:///local.db"), connect("postgresql+psycopg://lab/qd"))
    """
    from tqdm import tqdm

    infos = {r.id: r for r in source.runs()}  # newest first
    wanted = list(run_ids) if run_ids is not None else list(infos)[::-1]
    present = {r.id for r in target.runs()}
    missing = [i for i in wanted if i not in infos]
    if missing:
        raise RunNotFoundError(
            f"no run {missing[0]!r} in {source.display_url}; list the runs with `qdataset runs`"
        )
    todo = [i for i in wanted if i not in present]
    skipped = [i for i in wanted if i in present]
    total = sum(infos[i].length for i in todo)
    with tqdm(total=total, unit="row", disable=not show_progress, desc="copy") as bar:
        for run_id in todo:
            copy_dataset(source.read_dataset(run_id), target, progress=bar.update)
    return todo, skipped


def write_dataset(dataset: DataSet, target: Store | str | os.PathLike) -> DataSet:
    """Write ``dataset`` to a store, a database file (``.db``/``.sqlite``), a
    netCDF file (``.nc``) or a CSV file (``.csv``, through pandas); the format
    is inferred from the target.  netCDF and CSV files are written beside the
    target and renamed into place, so a failed export leaves nothing behind.

    >>> write_dataset(ds, "backup.db")
    >>> write_dataset(ds, "run.nc")
    >>> write_dataset(ds, "run.csv")
    """
    from .store import Store, connect

    if isinstance(target, Store):
        return target.write_dataset(dataset)
    if _is_netcdf(target):
        from .netcdf import write_netcdf

        write_netcdf(dataset, target)
        return dataset
    if _is_csv(target):
        write_csv(dataset, target)
        return dataset
    path = _sqlite_target(target)
    with connect(path) as store:
        store.write_dataset(dataset)
    return dataset


def read_dataset(source: Store | str | os.PathLike, run_id: str | None = None, *,
                 store: Store | None = None) -> DataSet:
    """Read a run from a store, a database file or a netCDF file; ``run_id`` may
    be left out when the file holds exactly one run.  From a database file the
    DataSet stays bound to the file's store (a live view).  A netCDF file is
    read without storing it anywhere (the DataSet lives in a private temporary
    store, deleted with it) unless ``store`` is given: then the run is imported
    into ``store`` (once: reading it again gives that run).  Reading never
    creates a database: a missing file, or one that holds no qdataset store, is
    a StoreError.

    To read a run of a store by its id or number, ask the store:
    ``connect().read_dataset(42)``.

    >>> ds = read_dataset("backup.db", "20261122-184312-sweep-1a2b3c4d")
    >>> ds = read_dataset("run.nc")                  # stored nowhere
    >>> ds = read_dataset("run.nc", store=connect())  # imported into the default store
    """
    from .store import Store, connect

    if isinstance(source, bool) or isinstance(source, int | np.integer):
        raise FormatError(
            f"read_dataset({source!r}) reads a file or a store, not a run number; read run "
            f"{source} of a store with connect().read_dataset({source}) "
            "(or connect(url).read_dataset(...))"
        )
    if isinstance(source, Store):
        return _into(source.read_dataset(run_id) if run_id is not None
                     else _only_run(source), store)
    if _is_netcdf(source):
        from .netcdf import read_netcdf

        dataset = read_netcdf(source, store)
        if run_id is not None and dataset.id != run_id:
            raise RunNotFoundError(f"{os.fspath(source)!r} holds run {dataset.id!r}, "
                                   f"not {run_id!r}")
        return dataset
    if _is_csv(source):
        raise FormatError(
            f"{os.fspath(source)!r}: CSV files are an export (values only, no ParamSpecs "
            "or metadata) and are not read back; use pandas.read_csv, or keep runs in "
            ".db or .nc files"
        )
    file_store = connect(_sqlite_target(source, reading=True), create=False)
    if store is None:  # a live view bound to the file's store
        return file_store.read_dataset(run_id) if run_id is not None else _only_run(file_store)
    with file_store:
        return _into(file_store.read_dataset(run_id) if run_id is not None
                     else _only_run(file_store), store)


def _only_run(store: Store) -> DataSet:
    runs = store.runs()
    if len(runs) != 1:
        raise RunNotFoundError(
            f"{store.display_url} holds {len(runs)} runs; pass the run id "
            "(list them with connect(url).runs())"
        )
    return store.read_dataset(runs[0].id)


def _into(dataset: DataSet, store: Store | None) -> DataSet:
    """``dataset``, copied into ``store`` first if one is given and lacks it."""
    if store is None or dataset.store is store:
        return dataset
    if not store.has_run(dataset.id):
        return copy_dataset(dataset, store)
    return store.read_dataset(dataset.id)

#: File suffixes read and written as netCDF-4 (through xarray).
NETCDF_SUFFIXES = (".nc", ".nc4", ".h5")


#: File suffixes written as CSV (through pandas; export only).
CSV_SUFFIXES = (".csv",)


def _is_netcdf(target: str | os.PathLike) -> bool:
    return Path(os.fspath(target)).suffix.lower() in NETCDF_SUFFIXES


def _is_csv(target: str | os.PathLike) -> bool:
    return Path(os.fspath(target)).suffix.lower() in CSV_SUFFIXES


def _sqlite_target(target: str | os.PathLike, reading: bool = False) -> Path:
    text = os.fspath(target)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    path = Path(text)
    if path.suffix.lower() not in SQLITE_SUFFIXES:
        hint = (f"; to read a run of a store by its id or number use "
                f"connect().read_dataset({text!r}) (or connect(url).read_dataset(...))"
                if reading and not path.suffix and not path.exists() else "")
        raise FormatError(
            f"cannot infer a format from {path.name!r}; use a database file ending in "
            f"{', '.join(SQLITE_SUFFIXES)}, a netCDF file ending in "
            f"{', '.join(NETCDF_SUFFIXES)}"
            + ("" if reading else f", a CSV file ending in {', '.join(CSV_SUFFIXES)}")
            + f", or pass a Store{hint}"
        )
    return path


def write_csv(dataset: DataSet, path: str | os.PathLike) -> None:
    """Write the run's values to a CSV file through pandas: setpoints first, then
    one column per parameter; an array-valued parameter gets one column per
    element (``trace[0]``, ``trace[1]``, ...; ``m[0][1]`` for 2-D arrays).  Missing
    values are empty fields.  Written through a temporary file, renamed into place.

    >>> write_dataset(ds, "run.csv")
    """
    from .netcdf import replacing

    frame = _frame(dataset, expand_arrays=True)
    with replacing(path) as scratch:
        frame.to_csv(scratch, index=bool(frame.index.names[0] is not None))


def dataframe_from_dataset(dataset: DataSet) -> pandas.DataFrame:
    """A pandas DataFrame of the run: setpoints as the index, other scalars as columns.

    Array-valued parameters become columns of numpy arrays (one per row).
    """
    return _frame(dataset, expand_arrays=False)


def _frame(dataset: DataSet, expand_arrays: bool) -> pandas.DataFrame:
    import pandas as pd

    specs = dataset.get_parameters()
    arrays = dataset.get_data(*specs) if specs else []
    columns: dict[str, Any] = {}
    for spec, values in zip(specs, arrays, strict=True):
        if spec.is_array and expand_arrays:
            if spec.is_variable_length:
                raise FormatError(
                    f"parameter {spec.name!r} has variable-length values, which a CSV "
                    "table cannot hold; export this run to a .db file"
                )
            for position in np.ndindex(*spec.shape):
                element = values[(slice(None), *position)]
                name = spec.name + "".join(f"[{k}]" for k in position)
                columns[name] = _column(element)
        elif spec.is_array:
            columns[spec.name] = list(values)
        else:
            columns[spec.name] = _column(values)
    frame = pd.DataFrame(columns)
    setpoints = [s.name for s in specs if s.role == "setpoint"]
    if setpoints:
        frame = frame.set_index(setpoints)
    return frame


def _column(values: np.ndarray) -> Any:
    """A pandas-ready column: missing ints/bools/strs become pandas NA."""
    import pandas as pd

    if not isinstance(values, np.ma.MaskedArray):
        return values
    column = pd.array(values.data.tolist(), dtype=_nullable_dtype(values.dtype))
    column[np.ma.getmaskarray(values)] = pd.NA
    return column


def _nullable_dtype(dtype: np.dtype) -> str:
    return {"b": "boolean", "U": "string"}.get(dtype.kind, "Int64")
