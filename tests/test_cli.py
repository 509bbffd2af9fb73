"""The qdataset command: demo and runs."""

from __future__ import annotations

import json
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
    header, line = listed.stdout.splitlines()
    assert header.split() == ["#", "ID", "NAME", "EXPERIMENT", "SAMPLE", "ROWS", "STATE",
                              "CREATED", "(UTC)"]
    assert line.split()[:2] == ["1", run_id]
    assert line.split()[3:7] == ["-", "-", "25", "completed"]  # no experiment, no sample
    assert _run("runs", "--url", url, "--name", "other", tmp_path=tmp_path).stdout == ""


def test_demo_on_the_default_store(tmp_path):
    out = _run("demo", "--points", "2", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "env.db").exists()
    listed = _run("runs", tmp_path=tmp_path)
    assert listed.stdout.splitlines()[1].split()[5:7] == ["4", "completed"]


def test_demo_rejects_bad_points(tmp_path):
    out = _run("demo", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--points", "0",
               tmp_path=tmp_path)
    assert out.returncode != 0
    assert "points" in out.stderr


# -- issue 13: reading never creates; errors are one line on stderr, exit code 2 ---------------


def _one_line_error(out: subprocess.CompletedProcess, command: str) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"qdataset {command}: ")
    assert "Traceback" not in out.stderr
    return line


def test_runs_on_a_missing_store_fails_and_creates_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "qdataset", "runs", "--url", "sqlite:///typo.db"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "HOME": str(tmp_path)})
    line = _one_line_error(out, "runs")
    assert str(tmp_path / "typo.db") in line and "does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_runs_on_the_default_store_does_not_create_it(tmp_path):
    line = _one_line_error(_run("runs", tmp_path=tmp_path), "runs")
    assert "env.db" in line
    assert not (tmp_path / "env.db").exists()


def test_copy_from_a_missing_source_fails_and_creates_no_target(tmp_path):
    out = subprocess.run([sys.executable, "-m", "qdataset", "copy", "nothere.db", "x.db"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "HOME": str(tmp_path)})
    line = _one_line_error(out, "copy")
    assert "nothere.db" in line
    assert list(tmp_path.iterdir()) == []  # neither x.db nor nothere.db


def test_copy_still_creates_its_target(tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    with qdataset.connect(source) as store:
        run_id = qdataset.DataSet("r", [qdataset.ParamSpec("x", np.float64)],
                                  [[1.0, 2.0]], store=store).id
    out = _run("copy", str(source), str(target), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "copied 1 runs" in out.stdout
    with qdataset.connect(target, create=False) as copied:
        assert [r.id for r in copied.runs()] == [run_id]


def test_unreachable_server_is_one_line_without_the_password(tmp_path):
    url = "postgresql+psycopg://qd:s3cret-pw@127.0.0.1:9/nowhere"
    for args in (("runs", "--url", url), ("copy", url, str(tmp_path / "x.db"))):
        line = _one_line_error(_run(*args, tmp_path=tmp_path), args[0])
        assert "s3cret-pw" not in line and "reachable" in line
    assert not (tmp_path / "x.db").exists()


def test_malformed_url_is_one_line_without_the_password(tmp_path):
    line = _one_line_error(_run("runs", "--url", "postgresql://qd:s3cret-pw@host:port/db",
                                tmp_path=tmp_path), "runs")
    assert "s3cret-pw" not in line and "not a database URL" in line


def test_runs_shows_failed_runs_with_state_filter_and_json(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    spec = [qdataset.ParamSpec("x", np.float64)]
    with qdataset.connect(url) as store:
        with qdataset.DataSet("good", spec, store=store) as good:
            good.add_result(x=1.0)
        try:
            with qdataset.DataSet("bad", spec, store=store) as bad:
                bad.add_result(x=1.0)
                bad.add_result(x=2.0)
                raise RuntimeError("lock-in overloaded")
        except RuntimeError:
            pass
        running = qdataset.DataSet("open", spec, store=store)
    listed = _run("runs", "--url", url, tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["#", "ID"] and lines[0].split()[5:7] == ["ROWS", "STATE"]
    states = {line.split()[1]: line.split()[6] for line in lines[1:]}
    # The store that wrote "open" is closed: its writer is gone, so it is resumable.
    assert states == {good.id: "completed", bad.id: "failed", running.id: "interrupted"}
    assert len({line.index(line.split()[6]) for line in lines}) == 1  # columns line up

    failed = _run("runs", "--url", url, "--state", "failed", tmp_path=tmp_path)
    assert [line.split()[1] for line in failed.stdout.splitlines()[1:]] == [bad.id]

    as_json = _run("runs", "--url", url, "--json", tmp_path=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    records = {r["id"]: r for r in map(json.loads, as_json.stdout.splitlines())}
    assert records[bad.id]["state"] == "failed" and records[bad.id]["rows"] == 2
    assert records[running.id]["completed"] is None
    assert set(records) == {good.id, bad.id, running.id}
