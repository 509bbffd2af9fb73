"""The qdataset command: demo and runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

import qdataset


def _run(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path), "QDATASET_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    env.pop("XDG_DATA_HOME", None)
    return subprocess.run([sys.executable, "-m", "qdataset", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_demo_and_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = _run("demo", "--url", url, "--points", "5", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    match = re.search(r"run id\s*:\s*(\S+)", out.stdout)
    assert match, out.stdout
    run_id = match.group(1)
    assert "gate_sweep" in run_id
    assert re.search(r"rows\s*:\s*25\b", out.stdout)
    assert str(tmp_path / "demo.db") in out.stdout
    assert not (tmp_path / "env.db").exists()  # --url was used, not the default

    with qdataset.connect(url) as store:
        (info,) = store.runs()
        assert info.id == run_id and info.length == 25 and info.completed
        g1, g2, G = store.read_dataset(run_id).get_data("gate1", "gate2", "conductance")
        assert sorted(set(g1.tolist())) == np.linspace(-1, 1, 5).tolist()
        assert sorted(set(g2.tolist())) == np.linspace(-1, 1, 5).tolist()
        assert np.isfinite(G).all() and G.std() > 0

    # the three lines of Python in the summary work as printed
    code = "\n".join(line[4:] for line in out.stdout.splitlines() if line.startswith("    "))
    assert "import qdataset" in code
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - this is the summary's own snippet
    assert len(namespace["G"]) == 25
    np.testing.assert_array_equal(namespace["G"], G)
    namespace["ds"].store.close()

    listed = _run("runs", "--url", url, tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert run_id in line and "25 rows" in line and "completed" in line
    assert _run("runs", "--url", url, "--name", "other", tmp_path=tmp_path).stdout == ""


def test_demo_on_the_default_store(tmp_path):
    out = _run("demo", "--points", "2", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "env.db").exists()
    listed = _run("runs", tmp_path=tmp_path)
    assert "4 rows" in listed.stdout


def test_demo_rejects_bad_points(tmp_path):
    out = _run("demo", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--points", "0",
               tmp_path=tmp_path)
    assert out.returncode != 0
    assert "points" in out.stderr
