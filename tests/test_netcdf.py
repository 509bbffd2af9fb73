"""Runs to and from netCDF files (xarray + h5netcdf), formats inferred from the suffix."""

from __future__ import annotations

import numpy as np
import pytest

import qdataset
from qdataset import DataSet, FormatError, ParamSpec, read_dataset, write_dataset
from qdataset.netcdf import read_netcdf, to_xarray

pytest.importorskip("xarray", reason="netCDF needs the 'netcdf' extra")
pytest.importorskip("h5netcdf", reason="netCDF needs the 'netcdf' extra")


def sample_run(store) -> DataSet:
    specs = [
        ParamSpec("gate", np.float64, role="setpoint", unit="V", label="Gate"),
        ParamSpec("n", np.int32, optional=True),
        ParamSpec("ok", bool),
        ParamSpec("label", str, optional=True),
        ParamSpec("z", np.complex128),
        ParamSpec("trace", np.float32, shape=(2, 3)),
    ]
    ds = DataSet("nc run", specs, store=store)
    for i in range(6):
        ds.add_result(gate=i * 0.1, n=None if i == 2 else i, ok=i % 2 == 0,
                      label=None if i == 4 else f"pt{i}", z=complex(i, 1),
                      trace=np.full((2, 3), i, dtype=np.float32))
    ds.add_metadata("sample", {"name": "S7", "T_mK": 12})
    ds.mark_completed()
    return ds


def assert_same(a: DataSet, b: DataSet) -> None:
    assert (a.id, a.name, a.length) == (b.id, b.name, b.length)
    assert a.get_parameters() == b.get_parameters()
    assert a.is_marked_complete and b.is_marked_complete
    assert a.get_metadata() == b.get_metadata()
    for left, right in zip(a.get_data(), b.get_data(), strict=True):
        assert left.dtype == right.dtype or (left.dtype.kind == right.dtype.kind == "U")
        np.testing.assert_array_equal(np.ma.getmaskarray(left), np.ma.getmaskarray(right))
        np.testing.assert_array_equal(np.ma.filled(left, left.dtype.type()),
                                      np.ma.filled(right, right.dtype.type()))


def test_netcdf_round_trip_into_another_store(tmp_path, store):
    with qdataset.connect(tmp_path / "origin.db") as origin:
        ds = sample_run(origin)
        write_dataset(ds, tmp_path / "run.nc")
        copy = read_netcdf(tmp_path / "run.nc", store)
        assert copy.store is store
        assert_same(ds, copy)
        assert read_netcdf(tmp_path / "run.nc", store).id == ds.id  # imported once
        assert len(store.runs()) == 1


def test_read_dataset_of_a_netcdf_file_stores_it_nowhere(tmp_path, monkeypatch):
    import gc

    from qdataset.store import store as store_module

    monkeypatch.setenv("QDATASET_URL", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.setattr(store_module, "_default_store", None)
    with qdataset.connect(tmp_path / "origin.db") as origin:
        ds = sample_run(origin)
        write_dataset(ds, str(tmp_path / "run.nc"))
        again = read_dataset(str(tmp_path / "run.nc"))
        assert_same(ds, again)
        assert not (tmp_path / "default.db").exists()   # the default store was not touched
        scratch = again.store.path.parent
        assert scratch.is_dir() and not scratch.is_relative_to(tmp_path)
        del again
        gc.collect()
        assert not scratch.exists()                     # its private store went with it


def test_read_dataset_with_store_imports_the_file_once(tmp_path, store):
    with qdataset.connect(tmp_path / "origin.db") as origin:
        ds = sample_run(origin)
        write_dataset(ds, tmp_path / "run.nc")
        first = read_dataset(tmp_path / "run.nc", store=store)
        assert first.store is store
        assert_same(ds, first)
    assert read_dataset(tmp_path / "run.nc", store=store).id == ds.id
    assert [r.id for r in store.runs()] == [ds.id]


def test_xarray_view_has_setpoints_as_dimensions(store):
    xds = to_xarray(sample_run(store))
    assert xds["z"].dims == ("gate",)
    assert xds["trace"].dims == ("gate", "trace_dim_0", "trace_dim_1")
    assert xds["gate"].attrs["units"] == "V"
    assert xds.sizes["gate"] == 6


def test_variable_length_runs_are_refused_with_advice(tmp_path, store):
    ds = DataSet("ragged", [ParamSpec("burst", np.int16, shape=(None,))], store=store)
    ds.add_result(burst=[1, 2, 3])
    with pytest.raises(FormatError, match="variable-length"):
        write_dataset(ds, tmp_path / "ragged.nc")
    assert not (tmp_path / "ragged.nc").exists()


def test_unknown_suffix_and_foreign_files(tmp_path, store):
    ds = sample_run(store)
    with pytest.raises(FormatError, match="cannot infer a format"):
        write_dataset(ds, tmp_path / "run.xyz")
    import xarray as xr

    xr.Dataset({"v": ("t", np.arange(3.0))}).to_netcdf(tmp_path / "foreign.nc",
                                                       engine="h5netcdf")
    with pytest.raises(FormatError, match="not written by qdataset"):
        read_netcdf(tmp_path / "foreign.nc", store)
