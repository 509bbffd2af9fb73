"""`qdataset copy` and copy_runs: measure locally, sync to the lab server."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import qdataset
from qdataset import CompletedError, DataSet, ParamSpec, RunNotFoundError
from qdataset.io import copy_runs


def make_runs(store) -> list[DataSet]:
    specs = [
        ParamSpec("x", np.float64, role="setpoint"),
        ParamSpec("n", np.int64, optional=True),
        ParamSpec("label", np.str_),
        ParamSpec("z", np.complex128),
        ParamSpec("trace", np.float32, shape=(3,)),
    ]
    done = DataSet("done", specs, store=store)
    for i in range(25):
        done.add_result(x=i / 2, n=None if i % 5 == 0 else i, label=f"p{i}", z=complex(i, -i),
                        trace=np.arange(3, dtype=np.float32) * i)
    done.add_metadata("sample", {"name": "S1", "T": 0.01})
    done.mark_completed()
    open_run = DataSet("still open", [ParamSpec("x", np.float64)], store=store)
    open_run.add_results({"x": np.linspace(0, 1, 7)})
    open_run.flush()
    return [done, open_run]


def assert_same_run(a: DataSet, b: DataSet) -> None:
    assert a.id == b.id and a.name == b.name
    assert a.get_parameters() == b.get_parameters()
    assert a.is_marked_complete == b.is_marked_complete
    assert a.length == b.length
    for left, right in zip(a.get_data(), b.get_data(), strict=True):
        assert left.dtype == right.dtype
        np.testing.assert_array_equal(np.ma.getdata(left), np.ma.getdata(right))
        np.testing.assert_array_equal(np.ma.getmaskarray(left), np.ma.getmaskarray(right))
    assert a.get_metadata() == b.get_metadata()


def test_copy_local_file_to_store_and_back(tmp_path, store):
    with qdataset.connect(tmp_path / "local.db") as local:
        runs = make_runs(local)
        copied, skipped = copy_runs(local, store, show_progress=False)
        assert sorted(copied) == sorted(r.id for r in runs) and skipped == []
        for run in runs:
            assert_same_run(run, store.read_dataset(run.id))
        # the lock travels with the run
        with pytest.raises(CompletedError):
            store.read_dataset(runs[0].id).add_result(x=1.0, n=1, label="a", z=1j,
                                                     trace=np.zeros(3))
        # a second sync copies nothing
        again, skipped = copy_runs(local, store, show_progress=False)
        assert again == [] and sorted(skipped) == sorted(copied)
        with qdataset.connect(tmp_path / "back.db") as back:
            copy_runs(store, back, [runs[0].id], show_progress=False)
            assert_same_run(runs[0], back.read_dataset(runs[0].id))
            assert [r.id for r in back.runs()] == [runs[0].id]


def test_copy_unknown_run_is_an_error_and_copies_nothing(tmp_path, store):
    with qdataset.connect(tmp_path / "local.db") as local:
        make_runs(local)
        with pytest.raises(RunNotFoundError):
            copy_runs(local, store, ["no-such-run"], show_progress=False)
    assert store.runs() == []


@pytest.mark.slow
def test_copy_command(tmp_path, store_url):
    with qdataset.connect(tmp_path / "local.db") as local:
        runs = make_runs(local)
    source = str(tmp_path / "local.db")
    done = subprocess.run(
        [sys.executable, "-m", "qdataset", "copy", source, store_url, "--run", runs[0].id],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "copied 1 runs" in done.stdout
    with qdataset.connect(store_url) as target:
        assert [r.id for r in target.runs()] == [runs[0].id]
        assert target.read_dataset(runs[0].id).length == 25
    again = subprocess.run([sys.executable, "-m", "qdataset", "copy", source, store_url],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "copied 1 runs" in again.stdout and "1 already there" in again.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "qdataset", "copy", source, store_url, "--run", "nope"],
        capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert "no run 'nope'" in missing.stderr and "Traceback" not in missing.stderr
