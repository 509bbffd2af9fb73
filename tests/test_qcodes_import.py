"""import_qcodes against a QCoDeS database written by real QCoDeS.

``fixtures/qcodes_runs.db`` and ``fixtures/qcodes_runs.json`` come from
``fixtures/make_qcodes_fixtures.py`` (QCoDeS 0.62, Python 3.12): for each run
the values the measurement gave ``add_result`` and QCoDeS's own reading
(``load_by_id`` + ``get_parameter_data``), numbers as raw bytes, so these tests
need no QCoDeS and compare every number bit for bit.

One finding shapes the comparison: QCoDeS reads its ``numeric`` columns through
an sqlite3 converter, which receives SQLite's text form of each REAL (15
significant digits), so QCoDeS's own reading of a float can differ from the
float it wrote in the last bits.  The file holds the exact float; qdataset
imports that.  So imported values equal the written ones bit for bit, and
QCoDeS's reading exactly for arrays, complex and text, and for numeric values
up to that 15-digit rounding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from qdataset import DataSet, FormatError, ParamSpec, QDatasetError, import_qcodes
from qdataset.cli import main
from qdataset.qcodes_import import QCodesFormatError, import_report

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOURCE = FIXTURES / "qcodes_runs.db"
EXPECTED = json.loads((FIXTURES / "qcodes_runs.json").read_text())["runs"]
BY_NAME = {run["name"]: run for run in EXPECTED}
GUIDS = [run["guid"] for run in EXPECTED]

#: QCoDeS paramtype -> numpy kind qdataset gives it.
KINDS = {"numeric": "f", "array": "f", "complex": "c", "text": "U"}


@pytest.fixture
def qcodes_db(tmp_path) -> Path:
    """A private copy of the fixture (tests must not depend on each other's files)."""
    path = tmp_path / "experiments.db"
    shutil.copyfile(SOURCE, path)
    return path


def _expected(array: dict) -> np.ndarray:
    if array["dtype"] == "str":
        return np.array(array["values"], dtype=str).reshape(array["shape"])
    return np.frombuffer(base64.b64decode(array["b64"]),
                         dtype=np.dtype(array["dtype"])).reshape(array["shape"])


def _present(table: str, name: str) -> np.ndarray:
    """Which rows of the QCoDeS results table have a value of ``name`` (qdataset
    reads missing floats back as NaN, which a stored NaN is too)."""
    with sqlite3.connect(SOURCE) as conn:
        return np.array([bool(v) for (v,) in conn.execute(
            f'SELECT "{name}" IS NOT NULL FROM "{table}" ORDER BY id')])


def _same_bits(mine: np.ndarray, theirs: np.ndarray, where: str) -> None:
    mine = np.ma.getdata(mine)
    if theirs.dtype.kind == "U":
        assert mine.tolist() == theirs.tolist(), where
        return
    assert mine.dtype == theirs.dtype, where
    assert mine.shape == theirs.shape, where
    assert np.ascontiguousarray(mine).tobytes() == np.ascontiguousarray(theirs).tobytes(), where


def test_every_run_and_value_equals_qcodes_own_reading(store, qcodes_db):
    ids = import_qcodes(qcodes_db, store=store)
    assert ids == GUIDS
    infos = {info.id: info for info in store.runs()}
    for run in EXPECTED:
        info = infos[run["guid"]]
        assert (info.number, info.name, info.experiment, info.sample) == \
            (run["captured_run_id"], run["name"], run["exp_name"], run["sample_name"])
        assert info.created.timestamp() == run["run_timestamp_raw"]
        assert info.completed == run["completed"]
        if run["completed"]:
            assert info.completed_at.timestamp() == run["completed_timestamp_raw"]
        ds = store.read_dataset(run["captured_run_id"])  # QCoDeS's load_by_id(n)
        assert ds.id == run["guid"] and ds.length == run["number_of_results"]
        specs = {s.name: s for s in ds.get_parameters()}
        assert list(specs) == list(run["parameters"]) or set(specs) == set(run["parameters"])
        setpoints = {d for p in run["parameters"].values() for d in p["depends_on"]}
        for name, param in run["parameters"].items():
            spec = specs[name]
            assert (spec.label, spec.unit) == (param["label"], param["unit"])
            assert list(spec.depends_on) == param["depends_on"]
            assert spec.role == ("setpoint" if name in setpoints else "output")
            assert spec.type.kind == KINDS[param["paramtype"]], name
            assert spec.metadata["qcodes"] == {"paramtype": param["paramtype"],
                                               "inferred_from": param["inferred_from"]}
        # The data, tree by tree as QCoDeS returns it: the rows where the dependent
        # has a value, reshaped (and scalar setpoints broadcast) to QCoDeS's shape.
        for dependent, tree in run["data"].items():
            present = _present(ds.get_metadata("qcodes")["result_table_name"], dependent)
            theirs_dep = _expected(tree[dependent])
            for name, array in tree.items():
                where = f"run {run['captured_run_id']} {dependent}/{name}"
                mine = np.ma.getdata(ds.get_data(name)[0])[present]
                # exactly what the measurement wrote
                _same_bits(mine, _expected(run["written"][name]), where + " (written)")
                theirs = _expected(array)
                if theirs.dtype.kind != "U" and mine.size != theirs.size:
                    extra = theirs_dep.ndim - mine.ndim
                    mine = np.broadcast_to(mine.reshape(mine.shape + (1,) * extra),
                                           (len(mine),) + theirs.shape[1:])
                mine = mine.reshape(theirs.shape)
                if run["parameters"][name]["paramtype"] == "numeric":
                    mine = _as_qcodes_reads_numeric(mine)
                _same_bits(mine, theirs, where + " (QCoDeS's reading)")


def _as_qcodes_reads_numeric(values: np.ndarray) -> np.ndarray:
    """A float as QCoDeS's numeric converter returns it: parsed from SQLite's text
    form of the REAL, ``%.15g`` (NaN was stored as text and reads as NaN)."""
    return np.array([v if not np.isfinite(v) else float(f"{v:.15g}")
                     for v in values.ravel().tolist()]).reshape(values.shape)


def test_parameter_types_and_shapes(store, qcodes_db):
    import_qcodes(qcodes_db, store=store)
    spectra = {s.name: s for s in store.read_dataset(BY_NAME["spectroscopy"]["guid"])
               .get_parameters()}
    assert spectra["freq"] == ParamSpec(
        "freq", np.float64, shape=(50,), role="setpoint", unit="Hz", label="Frequency",
        metadata={"qcodes": {"paramtype": "array", "inferred_from": []}})
    assert spectra["s21"].shape == (50,) and spectra["s21"].depends_on == ("power_in", "freq")
    assert spectra["power_in"].shape == () and not spectra["power_in"].optional
    readout = {s.name: s for s in store.read_dataset(4).get_parameters()}
    assert readout["iq"].type == np.complex128 and readout["verdict"].type.kind == "U"
    # QCoDeS stored the two dependents in rows of their own: each is missing elsewhere
    assert readout["iq"].optional and readout["verdict"].optional
    assert not readout["shot"].optional
    sweep = {s.name: s for s in store.read_dataset(1).get_parameters()}
    assert sweep["gate_dac"].metadata["qcodes"]["inferred_from"] == ["gate"]
    # odd floats came across exactly (NaN was stored by QCoDeS as the text 'nan')
    current = store.read_dataset(1).get_data("current")[0]
    assert 5e-324 in current and 1e308 in current and np.isnan(current).sum() == 1
    assert np.isinf(current).sum() == 2


def test_metadata_snapshot_and_run_description(store, qcodes_db):
    import_qcodes(qcodes_db, store=store)
    sweep = BY_NAME["gate_sweep"]
    meta = store.read_dataset(sweep["guid"]).get_metadata()
    assert meta["operator"] == "alice" and meta["fridge_temperature_mK"] == 12.5
    assert meta["snapshot"] == sweep["snapshot"]
    assert meta["snapshot"]["station"]["parameters"]["bias"]["value"] == 0.125
    qc = meta["qcodes"]
    assert qc["guid"] == sweep["guid"] and qc["captured_run_id"] == 1
    assert qc["exp_name"] == "cooldown-3" and qc["sample_name"] == "S1"
    assert qc["run_description"]["shapes"] == {"current": [21]}
    assert qc["source"] == str(qcodes_db.resolve())
    grid = store.read_dataset(BY_NAME["charge_stability"]["guid"]).get_metadata("qcodes")
    assert grid["run_description"]["shapes"] == {"conductance": [9, 6]}
    # runs without QCoDeS metadata carry no invented tags
    assert "operator" not in store.read_dataset(2).get_metadata()


def test_interrupted_run_is_incomplete_and_can_be_resumed(store, qcodes_db):
    import_qcodes(qcodes_db, store=store)
    guid = BY_NAME["overnight_sweep"]["guid"]
    info = next(r for r in store.runs() if r.id == guid)
    assert (info.completed, info.state, info.length) == (False, "interrupted", 13)  # resumable
    assert [r.id for r in store.runs(completed=False)] == [guid]
    ds = store.resume_dataset(guid)  # nobody writes it: no WriterActiveError
    ds.add_result(field=0.6, resistance=1018.0)
    ds.mark_completed()
    assert store.read_dataset(5).get_data("field")[0][-1] == 0.6


def test_second_import_skips_what_is_there(store, qcodes_db):
    assert len(import_qcodes(qcodes_db, store=store)) == 5
    report = import_report(qcodes_db, store=store)
    assert report.imported == [] and report.skipped == GUIDS and report.rows == 0
    assert import_qcodes(qcodes_db, store=store) == []
    assert len(store.runs()) == 5
    assert sum(r.length for r in store.runs()) == sum(r["number_of_results"] for r in EXPECTED)


def test_taken_numbers_move_to_the_next_free_one_and_are_reported(store, qcodes_db):
    native = [DataSet(f"native{i}", [ParamSpec("x", np.float64)], store=store)
              for i in range(2)]
    assert [d.number for d in native] == [1, 2]
    report = import_report(qcodes_db, store=store)
    # 1 and 2 are taken, so run 1 -> 3; then 3 is taken by it, and so on.
    assert report.renumbered == {GUIDS[0]: (1, 3), GUIDS[1]: (2, 4), GUIDS[2]: (3, 5),
                                 GUIDS[3]: (4, 6), GUIDS[4]: (5, 7)}
    assert store.read_dataset(3).id == GUIDS[0]
    assert store.read_dataset(1).id == native[0].id


def test_partly_free_numbers_are_kept(store, qcodes_db):
    DataSet("native", [ParamSpec("x", np.float64)], store=store)  # number 1
    DataSet("native", [ParamSpec("x", np.float64)], store=store)  # number 2
    with store.transaction() as conn:  # leave number 2 free again: only 1 is taken
        conn.exec_driver_sql("UPDATE runs SET number = 40 WHERE number = 2")
    report = import_report(qcodes_db, store=store)
    assert report.renumbered == {GUIDS[0]: (1, 41)}
    assert [store.read_dataset(n).id for n in (2, 3, 4, 5)] == GUIDS[1:]


def test_the_source_file_is_never_modified(sqlite_store, qcodes_db):
    before = (hashlib.sha256(qcodes_db.read_bytes()).hexdigest(), qcodes_db.stat().st_mtime_ns)
    neighbours = sorted(p.name for p in qcodes_db.parent.iterdir())
    import_qcodes(qcodes_db, store=sqlite_store)
    import_qcodes(qcodes_db, store=sqlite_store)
    assert (hashlib.sha256(qcodes_db.read_bytes()).hexdigest(),
            qcodes_db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in qcodes_db.parent.iterdir()) == neighbours


def test_ids_are_guids_and_prefixes_find_them(sqlite_store, qcodes_db):
    import_qcodes(qcodes_db, store=sqlite_store)
    guid = GUIDS[2]
    assert sqlite_store.read_dataset(guid[:8]).id == guid  # the GUIDs differ from the start
    assert sqlite_store.read_dataset(guid).number == 3


def test_files_that_are_not_qcodes_are_refused_clearly(sqlite_store, tmp_path, sqlite_url):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(QCodesFormatError, match="not a QCoDeS database.*SQLite") as caught:
        import_qcodes(text, store=sqlite_store)
    assert isinstance(caught.value, FormatError) and isinstance(caught.value, QDatasetError)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE runs (x)").connection.close()
    with pytest.raises(QCodesFormatError, match="no dependencies, experiments, layouts"):
        import_qcodes(empty, store=sqlite_store)
    assert sqlite_store.path is not None
    with pytest.raises(QCodesFormatError, match="qdataset store"):
        import_qcodes(sqlite_store.path, store=sqlite_store)
    with pytest.raises(FileNotFoundError):
        import_qcodes(tmp_path / "missing.db", store=sqlite_store)
    assert sqlite_store.runs() == []


def test_a_failing_run_leaves_nothing_half_imported(sqlite_store, qcodes_db):
    """A value that cannot be decoded fails its run, which is removed again; the runs
    before it stay imported, and a retry after the fix imports the rest."""
    broken = qcodes_db.parent / "broken.db"
    shutil.copyfile(qcodes_db, broken)
    with sqlite3.connect(broken) as conn:
        conn.execute("UPDATE \"results-2-1\" SET s21 = x'00010203' WHERE id = 1")
    with pytest.raises(QCodesFormatError, match="s21"):
        import_qcodes(broken, store=sqlite_store)
    assert [r.id for r in sqlite_store.runs()][::-1] == GUIDS[:2]
    assert import_qcodes(qcodes_db, store=sqlite_store) == GUIDS[2:]


def test_progress_bars_over_runs_and_rows(sqlite_store, qcodes_db, capsys):
    import_qcodes(qcodes_db, store=sqlite_store, show_progress=True)
    err = capsys.readouterr().err
    assert "runs" in err and "5/5" in err and "rows" in err and "104/104" in err
    import_qcodes(qcodes_db, store=sqlite_store, show_progress=False)
    assert capsys.readouterr().err == ""


def test_cli_import_and_runs_filters(qcodes_db, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    assert main(["import-qcodes", str(qcodes_db), "--url", url]) == 0
    out = capsys.readouterr().out
    assert "imported 5 runs (104 rows)" in out
    assert main(["import-qcodes", str(qcodes_db), "--url", url]) == 0
    assert "imported 0 runs" in capsys.readouterr().out and "5 already there, skipped"
    assert main(["runs", "--url", url, "--experiment", "cooldown-3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["number"], r["experiment"], r["sample"]) for r in rows] == \
        [(5, "cooldown-3", "S1"), (2, "cooldown-3", "S1"), (1, "cooldown-3", "S1")]
    assert rows[0]["id"] == GUIDS[4] and rows[0]["state"] == "interrupted"
    assert main(["runs", "--url", url, "--sample", "S2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["#", "ID", "NAME", "EXPERIMENT", "SAMPLE"]
    assert [line.split()[0] for line in table[1:]] == ["4", "3"]
    assert "iq_readout" in table[1] and "characterisation" in table[1]
    assert main(["runs", "--url", url, "--since", "2025-12-01T15:30+00:00", "--json"]) == 0
    assert [json.loads(line)["number"] for line in capsys.readouterr().out.splitlines()] == \
        [5, 4]
    assert main(["runs", "--url", url, "--since", "3650d", "--state", "completed",
                 "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["runs", "--url", url, "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err
    assert main(["import-qcodes", str(tmp_path / "lab.db"), "--url", url]) == 2
    assert "is not a QCoDeS database" in capsys.readouterr().err


def test_cli_run_argument_number_id_or_prefix(sqlite_store, qcodes_db):
    """RUN of show/export/plot: digits are a number, or an id prefix when no run has
    that number (run ids start with their date)."""
    import qdataset.cli

    _read_run = getattr(qdataset.cli, "_read_run", None)
    if _read_run is None:
        pytest.skip("qdataset show/export/plot (which take RUN) are not in this tree")
    import_qcodes(qcodes_db, store=sqlite_store)
    assert _read_run(sqlite_store, "4").id == GUIDS[3]
    assert _read_run(sqlite_store, GUIDS[1]).number == 2
    assert _read_run(sqlite_store, GUIDS[0][:6]).number == 1
    ds = DataSet("native", [ParamSpec("x", np.float64)], store=sqlite_store)
    assert _read_run(sqlite_store, ds.id[:8]).id == ds.id  # digits, but no such number
    with pytest.raises(qdataset.RunNotFoundError):
        _read_run(sqlite_store, "99")
