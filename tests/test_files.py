"""Files: netCDF with datetimes, sparse optional arrays, temporary-file writes and
QCoDeS's attributes; CSV export; top-level read_dataset's advice for run ids."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import qdataset
from qdataset import DataSet, FormatError, ParamSpec, read_dataset, write_dataset
from qdataset.demo import run_demo

xr = pytest.importorskip("xarray", reason="netCDF needs the 'netcdf' extra")
pytest.importorskip("h5netcdf", reason="netCDF needs the 'netcdf' extra")


def times_run(store) -> DataSet:
    specs = [ParamSpec("t", "datetime64[us]", role="setpoint"),
             ParamSpec("v", np.float64, depends_on=["t"], unit="K"),
             ParamSpec("wait", "timedelta64[ms]", optional=True)]
    ds = DataSet("times", specs, store=store)
    base = np.datetime64("2026-01-01T00:00:00.123456", "us")
    for i in range(4):
        ds.add_result(t=base + np.timedelta64(i, "s"), v=i * 1.5,
                      wait=None if i == 2 else np.timedelta64(10 * i, "ms"))
    return ds


def test_datetime_and_timedelta_values_round_trip(tmp_path, sqlite_store):
    ds = times_run(sqlite_store)
    write_dataset(ds, tmp_path / "t.nc")
    again = read_dataset(tmp_path / "t.nc")
    for before, after in zip(ds.get_data(), again.get_data(), strict=True):
        assert after.dtype == before.dtype
        np.testing.assert_array_equal(np.ma.getmaskarray(after), np.ma.getmaskarray(before))
        np.testing.assert_array_equal(np.ma.filled(after), np.ma.filled(before))
    assert np.ma.getmaskarray(again.get_data("wait")[0]).tolist() == [False, False, True, False]


def test_an_optional_array_never_given_costs_almost_nothing(tmp_path, sqlite_store):
    specs = [ParamSpec("x", np.float64, role="setpoint"),
             ParamSpec("y", np.float64, depends_on=["x"]),
             ParamSpec("trace", np.float64, shape=(1000,), optional=True),
             ParamSpec("counts", np.int32, shape=(500,), optional=True)]
    ds = DataSet("sparse", specs, store=sqlite_store)
    rows = 2000
    ds.add_results({"x": np.arange(rows, dtype=float), "y": np.ones(rows)})
    ds.add_result(x=-1.0, y=0.0, counts=np.arange(500, dtype=np.int32))
    write_dataset(ds, tmp_path / "sparse.nc")
    size = (tmp_path / "sparse.nc").stat().st_size
    raw = (rows + 1) * (1000 * 8 + 500 * 4)          # 20 MB if written uncompressed
    assert size < raw / 100, f"{size} bytes for {raw} bytes of mostly missing values"
    again = read_dataset(tmp_path / "sparse.nc")
    trace, counts = again.get_data("trace", "counts")
    assert np.isnan(trace).all()
    assert np.ma.getmaskarray(counts)[:, 0].tolist() == [True] * rows + [False]
    np.testing.assert_array_equal(counts[-1], np.arange(500))


def test_a_failed_export_leaves_nothing_behind(tmp_path, sqlite_store, monkeypatch):
    ds = times_run(sqlite_store)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "keep.nc"
    target.write_text("the previous export")
    real = xr.Dataset.to_netcdf

    def disk_full(self, path, *args, **kwargs):  # the file is written, then the disk fills
        real(self, path, *args, **kwargs)
        assert path.exists() and path != target
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", disk_full)
    with pytest.raises(FormatError, match="No space left"):
        write_dataset(ds, target)
    assert sorted(p.name for p in out.iterdir()) == ["keep.nc"]
    assert target.read_text() == "the previous export"
    monkeypatch.undo()
    write_dataset(ds, target)               # a good export replaces the old file
    assert read_dataset(target).length == 4
    assert sorted(p.name for p in out.iterdir()) == ["keep.nc"]


def test_write_errors_do_not_suggest_installing_anything(tmp_path, sqlite_store):
    record = np.dtype([("a", "i4"), ("b", "f8")])
    ds = DataSet("records", [ParamSpec("rec", record)], store=sqlite_store)
    ds.add_result(rec=np.array((1, 2.0), dtype=record))
    with pytest.raises(FormatError) as info:
        write_dataset(ds, tmp_path / "rec.nc")
    assert "pip install" not in str(info.value) and ds.id in str(info.value)
    assert not [p for p in tmp_path.iterdir() if "rec.nc" in p.name]


def test_netcdf_file_carries_qcodes_attributes(tmp_path, sqlite_store):
    ds = DataSet("gates", [ParamSpec("g", np.float64, role="setpoint", unit="V"),
                           ParamSpec("i", np.float64, depends_on=["g"], unit="A")],
                 store=sqlite_store, experiment="cooldown-3", sample="S1")
    ds.add_results({"g": [0.0, 0.1], "i": [1.0, 2.0]})
    ds.mark_completed()
    write_dataset(ds, tmp_path / "run.nc")
    with xr.open_dataset(tmp_path / "run.nc", engine="h5netcdf") as xds:
        attrs = xds.attrs
        assert attrs["ds_name"] == "gates"
        assert (attrs["exp_name"], attrs["sample_name"]) == ("cooldown-3", "S1")
        assert attrs["captured_run_id"] == ds.number
        assert len(attrs["guid"]) == 36 and attrs["guid"].count("-") == 4
        assert attrs["completed_timestamp_raw"] == ds.completed_at
        described = json.loads(attrs["run_description"])["interdependencies"]["paramspecs"]
        assert [(p["name"], p["depends_on"], p["unit"]) for p in described] == [
            ("g", [], "V"), ("i", ["g"], "A")]
        assert xds["multi_index"].attrs["compress"] == "g"
        assert xds["i"].dims == ("multi_index",)
    again = read_dataset(tmp_path / "run.nc")
    assert (again.experiment, again.sample, again.number) == ("cooldown-3", "S1", ds.number)


def test_rows_come_back_in_their_order_with_repeated_setpoints(tmp_path, sqlite_store):
    specs = [ParamSpec("a", np.float64, role="setpoint"),
             ParamSpec("b", np.int64, role="setpoint"),
             ParamSpec("v", np.float64, depends_on=["a", "b"])]
    a = np.array([1.0, 0.0, 1.0, np.nan, 0.5])
    b = np.array([3, 2, 3, 1, 2])
    ds = DataSet("odd", specs, [a, b, np.arange(5.0)], store=sqlite_store)
    write_dataset(ds, tmp_path / "odd.nc")      # NaN setpoint: rows along index
    for got, want in zip(read_dataset(tmp_path / "odd.nc").get_data(), (a, b, np.arange(5.0)),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    ds2 = DataSet("repeats", specs, [a[[0, 1, 2, 4]], b[[0, 1, 2, 4]], np.arange(4.0)],
                  store=sqlite_store)
    write_dataset(ds2, tmp_path / "repeats.nc")
    got = read_dataset(tmp_path / "repeats.nc").get_data("a", "b", "v")
    np.testing.assert_array_equal(got[0], [1.0, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(got[1], [3, 2, 3, 2])
    np.testing.assert_array_equal(got[2], np.arange(4.0))


def test_csv_export(tmp_path, sqlite_store):
    specs = [ParamSpec("x", np.float64, role="setpoint"),
             ParamSpec("n", np.int64, optional=True),
             ParamSpec("label", str),
             ParamSpec("trace", np.float32, shape=(2,))]
    ds = DataSet("csv", specs, store=sqlite_store)
    ds.add_result(x=0.5, n=3, label="a,b", trace=[1.0, 2.0])
    ds.add_result(x=1.5, label="c", trace=[3.0, 4.0])
    write_dataset(ds, tmp_path / "run.csv")
    frame = pd.read_csv(tmp_path / "run.csv")
    assert list(frame.columns) == ["x", "n", "label", "trace[0]", "trace[1]"]
    assert frame["x"].tolist() == [0.5, 1.5]
    assert frame["n"].iloc[0] == 3 and pd.isna(frame["n"].iloc[1])
    assert frame["label"].tolist() == ["a,b", "c"]
    assert frame["trace[1]"].tolist() == [2.0, 4.0]
    no_setpoints = DataSet("plain", [ParamSpec("m", np.int16, shape=(2, 2))], store=sqlite_store)
    no_setpoints.add_result(m=[[1, 2], [3, 4]])
    write_dataset(no_setpoints, tmp_path / "plain.csv")
    assert (tmp_path / "plain.csv").read_text().splitlines() == [
        "m[0][0],m[0][1],m[1][0],m[1][1]", "1,2,3,4"]
    with pytest.raises(FormatError, match="not read back"):
        read_dataset(tmp_path / "run.csv")


def test_read_dataset_points_run_ids_and_numbers_to_the_store(tmp_path):
    with pytest.raises(FormatError, match=r"connect\(\)\.read_dataset\(42\)"):
        read_dataset(42)
    with pytest.raises(FormatError, match=r"connect\(\)\.read_dataset\('20261201-1305"):
        read_dataset("20261201-1305-sweep-1a2b3c4d")
    with pytest.raises(FormatError) as info:        # a file with a strange suffix: no hint
        read_dataset(tmp_path / "run.xyz")
    assert "read_dataset(" not in str(info.value)


def test_a_db_file_run_copied_into_a_store(tmp_path, store):
    with qdataset.connect(tmp_path / "other.db") as other:
        ds = run_demo(other, points=3, progress=False)
    copied = read_dataset(tmp_path / "other.db", ds.id, store=store)
    assert copied.store is store and copied.length == 9
    assert read_dataset(tmp_path / "other.db", store=store).id == ds.id   # once
    assert len(store.runs()) == 1
