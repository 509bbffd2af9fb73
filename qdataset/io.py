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

    wanted = list(run_ids) if run_ids is not None else [r.id for r in source.runs()][::-1]
    present = {r.id for r in target.runs()}
    infos = {r.id: r for r in source.runs()}
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
    """Write ``dataset`` to a store, a database file (``.db``/``.sqlite``) or
    a netCDF file (``.nc``); the format is inferred from the target.

    >>> write_dataset(ds, "backup.db")
    >>> write_dataset(ds, "run.nc")
    """
    from .store import Store, connect

    if isinstance(target, Store):
        return target.write_dataset(dataset)
    if _is_netcdf(target):
        from .netcdf import write_netcdf

        write_netcdf(dataset, target)
        return dataset
    path = _sqlite_target(target)
    with connect(path) as store:
        store.write_dataset(dataset)
    return dataset


def read_dataset(source: Store | str | os.PathLike, run_id: str | None = None) -> DataSet:
    """Read a run from a store, a database file or a netCDF file; ``run_id`` may
    be left out when the file holds exactly one run.  From a database file the
    DataSet stays bound to the file's store (a live view); a netCDF file is
    imported into the default store (once: reading it again gives that run).
    Reading never creates a database: a missing file, or one that holds no
    qdataset store, is a StoreError.

    >>> ds = read_dataset("backup.db", "20261122-184312-sweep-1a2b3c4d")
    """
    from .store import Store, connect

    store = source if isinstance(source, Store) else None
    if store is None and _is_netcdf(source):
        from .netcdf import read_netcdf

        dataset = read_netcdf(source)
        if run_id is not None and dataset.id != run_id:
            raise RunNotFoundError(f"{os.fspath(source)!r} holds run {dataset.id!r}, "
                                   f"not {run_id!r}")
        return dataset
    if store is None:
        store = connect(_sqlite_target(source), create=False)
    if run_id is None:
        runs = store.runs()
        if len(runs) != 1:
            raise RunNotFoundError(
                f"{store.display_url} holds {len(runs)} runs; pass the run id "
                "(list them with connect(url).runs())"
            )
        run_id = runs[0].id
    return store.read_dataset(run_id)


#: File suffixes read and written as netCDF-4 (through xarray).
NETCDF_SUFFIXES = (".nc", ".nc4", ".h5")


def _is_netcdf(target: str | os.PathLike) -> bool:
    return Path(os.fspath(target)).suffix.lower() in NETCDF_SUFFIXES


def _sqlite_target(target: str | os.PathLike) -> Path:
    text = os.fspath(target)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    path = Path(text)
    if path.suffix.lower() not in SQLITE_SUFFIXES:
        raise FormatError(
            f"cannot infer a format from {path.name!r}; use a database file ending in "
            f"{', '.join(SQLITE_SUFFIXES)}, a netCDF file ending in "
            f"{', '.join(NETCDF_SUFFIXES)}, or pass a Store"
        )
    return path


def dataframe_from_dataset(dataset: DataSet) -> pandas.DataFrame:
    """A pandas DataFrame of the run: setpoints as the index, other scalars as columns.

    Array-valued parameters become columns of numpy arrays (one per row).
    """
    import pandas as pd

    specs = dataset.get_parameters()
    arrays = dataset.get_data(*specs) if specs else []
    columns: dict[str, Any] = {}
    for spec, values in zip(specs, arrays, strict=True):
        if spec.is_array:
            columns[spec.name] = list(values)
        elif isinstance(values, np.ma.MaskedArray):  # missing ints/bools/strs -> pandas NA
            column = pd.array(values.data.tolist(), dtype=_nullable_dtype(values.dtype))
            column[np.ma.getmaskarray(values)] = pd.NA
            columns[spec.name] = column
        else:
            columns[spec.name] = values
    frame = pd.DataFrame(columns)
    setpoints = [s.name for s in specs if s.role == "setpoint"]
    if setpoints:
        frame = frame.set_index(setpoints)
    return frame


def _nullable_dtype(dtype: np.dtype) -> str:
    return {"b": "boolean", "U": "string"}.get(dtype.kind, "Int64")
