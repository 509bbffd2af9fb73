"""qdataset show / export / plot: one run, named by number, id or id prefix."""

from __future__ import annotations

import json

import numpy as np
import pytest

import qdataset
from qdataset import DataSet, ParamSpec
from qdataset.cli import main
from qdataset.demo import run_demo


@pytest.fixture
def lab(tmp_path):
    """A store file with the demo sweep (number 1) and a 1-D run in groups (number 2)."""
    path = tmp_path / "lab.db"
    with qdataset.connect(path) as store:
        sweep = run_demo(store, points=4, progress=False)
        specs = [ParamSpec("f", np.float64, role="setpoint", unit="Hz", label="frequency"),
                 ParamSpec("amp", np.float64, depends_on=["f"], unit="V")]
        line = DataSet("line", specs, [[1.0, 2.0], [0.5, 0.25]], store=store,
                       experiment="cooldown-3", sample="S1")
        line.add_metadata("fridge", {"T_mK": 12})
        line.mark_completed()
    return {"url": f"sqlite:///{path}", "sweep": sweep.id, "line": line.id, "dir": tmp_path}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_describes_a_run(lab, capsys):
    code, out, _ = run(capsys, "show", lab["line"], "--url", lab["url"])
    assert code == 0
    facts = dict(line.split(":", 1) for line in out.splitlines()[:9])
    assert {k: v.strip() for k, v in facts.items()} | {"created": "", "completed": ""} == {
        "id": lab["line"], "number": "2", "name": "line", "experiment": "cooldown-3",
        "sample": "S1", "state": "completed", "rows": "2", "created": "", "completed": ""}
    assert "  f     float64  setpoint  Hz    frequency" in out
    assert "  amp   float64  output    V     -          depends on f" in out
    assert '"fridge": {' in out and '"T_mK": 12' in out


def test_show_says_interrupted_like_runs_does(tmp_path, capsys):
    """A run whose writer left it incomplete is "interrupted" in `show` as in `runs`."""
    url = f"sqlite:///{tmp_path / 'left.db'}"
    with qdataset.connect(url) as store:
        DataSet("left", [ParamSpec("x", np.float64)], store=store).add_result(x=1.0)
    code, out, _ = run(capsys, "show", "1", "--url", url)
    assert code == 0 and "state:      interrupted" in out.splitlines()
    code, out, _ = run(capsys, "runs", "--url", url)
    assert code == 0 and "interrupted" in out


def test_run_by_number_and_by_id_prefix(lab, capsys):
    code, out, _ = run(capsys, "show", "1", "--url", lab["url"])
    assert code == 0 and f"id:         {lab['sweep']}" in out
    prefix = lab["line"][: lab["line"].index("-line") + 2]   # "<date>-<time>-li"
    code, out, _ = run(capsys, "show", prefix, "--url", lab["url"])
    assert code == 0 and f"id:         {lab['line']}" in out
    code, _, err = run(capsys, "show", "7", "--url", lab["url"])
    assert code == 2 and err.startswith("qdataset show: ") and "7" in err
    assert "Traceback" not in err


def test_export_by_suffix(lab, capsys):
    pytest.importorskip("h5netcdf", reason="netCDF needs the 'netcdf' extra")
    nc, csv = lab["dir"] / "sweep.nc", lab["dir"] / "line.csv"
    code, out, _ = run(capsys, "export", "1", str(nc), "--url", lab["url"])
    assert code == 0 and f"wrote run {lab['sweep']} (16 rows)" in out
    again = qdataset.read_dataset(nc)
    assert again.id == lab["sweep"] and again.length == 16
    code, _, _ = run(capsys, "export", "2", str(csv), "--url", lab["url"])
    assert code == 0
    assert csv.read_text().splitlines() == ["f,amp", "1.0,0.5", "2.0,0.25"]
    code, _, err = run(capsys, "export", "2", str(lab["dir"] / "x.txt"), "--url", lab["url"])
    assert code == 2 and "cannot infer a format" in err
    assert not (lab["dir"] / "x.txt").exists()


def test_import_what_export_wrote_into_another_store(lab, capsys):
    """export then import: the run arrives whole in another store, once."""
    pytest.importorskip("h5netcdf", reason="netCDF needs the 'netcdf' extra")
    nc = lab["dir"] / "line.nc"
    assert run(capsys, "export", "2", str(nc), "--url", lab["url"])[0] == 0
    before = nc.read_bytes()
    other = f"sqlite:///{lab['dir'] / 'other.db'}"
    code, out, _ = run(capsys, "import", str(nc), "--url", other)
    assert code == 0 and out.startswith(f"imported run {lab['line']} (2 rows) from ")
    code, out, _ = run(capsys, "import", str(nc), "--url", other)
    assert code == 0 and out.startswith(f"already there: run {lab['line']} (2 rows)")
    assert nc.read_bytes() == before
    with qdataset.connect(other) as store:
        assert [r.id for r in store.runs()] == [lab["line"]]
        ds = store.read_dataset(lab["line"])
        assert [a.tolist() for a in ds.get_data("f", "amp")] == [[1.0, 2.0], [0.5, 0.25]]
        assert ds.get_metadata("fridge") == {"T_mK": 12} and ds.is_marked_complete
    csv = lab["dir"] / "line.csv"
    assert run(capsys, "export", "2", str(csv), "--url", lab["url"])[0] == 0
    code, _, err = run(capsys, "import", str(csv), "--url", other)
    assert code == 2 and err.startswith("qdataset import: ") and "not read back" in err


def test_plot_to_a_file(lab, capsys):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib")
    png = lab["dir"] / "sweep.png"
    code, out, _ = run(capsys, "plot", "1", "-o", str(png), "--url", lab["url"])
    assert code == 0 and str(png) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_a_display_says_to_save(lab, capsys, monkeypatch):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib")
    monkeypatch.setattr("sys.platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "plot", "1", "--url", lab["url"])
    assert code == 2 and "-o FILE" in err


def test_reading_commands_never_create_a_store(tmp_path, capsys):
    missing = tmp_path / "nothing.db"
    for argv in (["show", "1"], ["export", "1", str(tmp_path / "a.nc")], ["plot", "1", "-o",
                                                                         str(tmp_path / "a.png")]):
        code, _, err = run(capsys, *argv, "--url", f"sqlite:///{missing}")
        assert code == 2 and "no qdataset store" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_show_json_free_metadata_of_a_failed_run(tmp_path, capsys):
    path = tmp_path / "lab.db"
    with qdataset.connect(path) as store:
        with pytest.raises(RuntimeError), DataSet("broken", [ParamSpec("v", np.float64)],
                                                  store=store) as ds:
            ds.add_result(v=1.0)
            raise RuntimeError("lost the fridge")
    code, out, _ = run(capsys, "show", "1", "--url", f"sqlite:///{path}")
    assert code == 0 and "state:      failed" in out
    metadata = json.loads("{" + out.split("metadata:", 1)[1] + "}")
    assert metadata["error"]["message"] == "lost the fridge"
