"""QCoDeS's own load_from_netcdf opens qdataset's netCDF exports, values equal.

QCoDeS 0.59+ needs Python 3.12, so it runs in a venv of its own (created once
in the temp dir and reused: ``<tmp>/qdataset-qcodes-py312``; or point
``QDATASET_QCODES_PYTHON`` at a Python that has qcodes).  Without Python 3.12
(pyenv's or ``python3.12`` on PATH) or without network access to install
qcodes, the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from qdataset import DataSet, ParamSpec, write_dataset
from qdataset.demo import run_demo

pytest.importorskip("h5netcdf", reason="netCDF needs the 'netcdf' extra")
pytestmark = pytest.mark.slow

VENV = Path(tempfile.gettempdir()) / "qdataset-qcodes-py312"

LOAD = r"""
import json, sys
import numpy as np
from qcodes.dataset import load_from_netcdf

out = {}
for path in sys.argv[2:]:
    ds = load_from_netcdf(path, path_to_db=sys.argv[1])
    data = ds.get_parameter_data()
    def plain(a):
        a = np.asarray(a)
        return [[v.real, v.imag] for v in a.tolist()] if a.dtype.kind == "c" else a.tolist()
    out[path] = {
        "guid": ds.guid, "captured_run_id": ds.captured_run_id, "name": ds.name,
        "exp_name": ds.exp_name, "sample_name": ds.sample_name,
        "completed": ds.completed_timestamp_raw, "started": ds.run_timestamp_raw,
        "dependents": {spec.name: [p.name for p in setpoints] for spec, setpoints
                       in ds.description.interdeps.dependencies.items()},
        "units": {p.name: p.unit for p in ds.description.interdeps.paramspecs},
        "data": {dep: {name: plain(values) for name, values in columns.items()}
                 for dep, columns in data.items()},
    }
print(json.dumps(out))
"""


def _python312() -> str | None:
    candidates = [Path.home() / ".pyenv/versions/3.12.1/bin/python",
                  *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python"))]
    found = shutil.which("python3.12")
    if found:
        candidates.append(Path(found))
    return next((str(c) for c in candidates if c.exists()), None)


def _has_qcodes(python: str) -> bool:
    try:
        probe = subprocess.run([python, "-c", "import qcodes, h5netcdf"], capture_output=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.fixture(scope="session")
def qcodes_python() -> str:
    given = os.environ.get("QDATASET_QCODES_PYTHON")
    if given:
        if not _has_qcodes(given):
            pytest.skip(f"QDATASET_QCODES_PYTHON={given} cannot import qcodes and h5netcdf")
        return given
    cached = VENV / "bin" / "python"
    if cached.exists() and _has_qcodes(str(cached)):
        return str(cached)
    base = _python312()
    if base is None:
        pytest.skip("QCoDeS 0.59+ needs Python 3.12: neither pyenv's 3.12 nor python3.12 "
                    "on PATH was found")
    partial = VENV.with_name(f"{VENV.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        subprocess.run([base, "-m", "venv", str(partial)], check=True, capture_output=True,
                       timeout=120)
        subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "install", "-q",
                        "qcodes>=0.59", "h5netcdf"], check=True, capture_output=True,
                       text=True, timeout=900)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        tail = " ".join(str(exc.stderr or "").split()[-40:])
        pytest.skip(f"could not install qcodes into a Python 3.12 venv (offline?): {tail}")
    except subprocess.TimeoutExpired:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.skip("installing qcodes into a Python 3.12 venv took over 15 minutes")
    shutil.rmtree(VENV, ignore_errors=True)
    partial.rename(VENV)  # a venv's python finds pyvenv.cfg beside it, so renaming is fine
    return str(cached)


def test_qcodes_load_from_netcdf_reads_qdataset_exports(tmp_path, sqlite_store, qcodes_python):
    grid = run_demo(sqlite_store, points=5, progress=False)
    specs = [ParamSpec("freq", np.float64, role="setpoint", unit="Hz", label="frequency"),
             ParamSpec("s21", np.complex128, depends_on=["freq"]),
             ParamSpec("counts", np.int64, depends_on=["freq"])]
    freq = np.array([3e9, 1e9, 2e9])                   # not sorted: rows keep their order
    line = DataSet("resonator", specs, [freq, freq * (1 + 2j) / 1e9, [7, 8, 9]],
                   store=sqlite_store, experiment="cooldown-3", sample="S1")
    paths = {grid.id: tmp_path / "grid.nc", line.id: tmp_path / "line.nc"}
    for ds in (grid, line):
        write_dataset(ds, paths[ds.id])
    result = subprocess.run(
        [qcodes_python, "-c", LOAD, str(tmp_path / "qcodes.db"), *map(str, paths.values())],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)})   # QCoDeS writes config/logs under HOME
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.splitlines()[-1])

    got = loaded[str(paths[grid.id])]
    assert got["name"] == "gate_sweep" and got["captured_run_id"] == grid.number
    assert got["completed"] == grid.completed_at and got["started"] == grid.created_at
    assert got["dependents"] == {"conductance": ["gate1", "gate2"]}
    assert got["units"] == {"gate1": "V", "gate2": "V", "conductance": "e^2/h"}
    g1, g2, g = grid.get_data("gate1", "gate2", "conductance")
    columns = got["data"]["conductance"]
    assert columns["conductance"] == g.tolist()            # bit for bit, in row order
    assert columns["gate1"] == g1.tolist() and columns["gate2"] == g2.tolist()

    got = loaded[str(paths[line.id])]
    assert (got["exp_name"], got["sample_name"]) == ("cooldown-3", "S1")
    assert got["completed"] is None                  # left incomplete: QCoDeS says so too
    assert got["data"]["counts"] == {"counts": [7, 8, 9], "freq": freq.tolist()}
    s21 = freq * (1 + 2j) / 1e9
    assert got["data"]["s21"]["s21"] == [[v.real, v.imag] for v in s21.tolist()]
    assert got["guid"] == got["guid"].lower() and len(got["guid"]) == 36
