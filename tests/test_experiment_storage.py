"""Analysis results, figures, children, copy, save/load (also across processes), auto_save."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa

from qdataset.experiment import (
    AnalysisResult,
    ExperimentData,
    ExperimentDataError,
    ExperimentEntryNotFound,
    ExperimentNotFoundError,
    ExperimentStatus,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>'


def histogram():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().bar(["00", "11"], [489, 511])
    return fig


def test_analysis_results_by_index_name_and_id(store):
    exp = ExperimentData(store=store)
    a = AnalysisResult("fidelity", 0.98, quality="good", device_components=["Q0", "Q1"])
    b = AnalysisResult("t1", np.float64(4.5e-5), extra={"unit": "s"}, chisq=1.2)
    c = AnalysisResult("t1", 5e-5)
    exp.add_analysis_results(a)
    exp.add_analysis_results([b, c])
    assert exp.analysis_results(0) is a and exp.analysis_results(-1) is c
    assert exp.analysis_results("fidelity") is a
    assert exp.analysis_results("t1") == [b, c]
    assert exp.analysis_results(b.result_id) is b
    assert exp.analysis_results(slice(1, 3)) == [b, c]
    assert a.experiment_id == exp.experiment_id
    with pytest.raises(ExperimentEntryNotFound, match="fidelity"):
        exp.analysis_results("t2")
    with pytest.raises(ExperimentDataError, match="by id"):
        exp.delete_analysis_result("t1")
    assert exp.delete_analysis_result(b.result_id) == b.result_id
    assert exp.delete_analysis_result(0) == a.result_id
    assert exp.analysis_results() == [c]


def test_figures_matplotlib_svg_png_and_duplicate_names(store):
    exp = ExperimentData(store=store)
    assert exp.add_figures(histogram(), figure_names="hist") == "hist"
    assert exp.figure("hist").format == "svg" and b"<svg" in exp.figure("hist").data
    assert exp.add_figures([SVG, PNG], figure_names=["hist", "hist"]) == ["hist-1", "hist-2"]
    assert exp.figure("hist-2").format == "png" and exp.figure(-1).data == PNG
    unnamed = exp.add_figures(SVG)
    assert unnamed.startswith(f"figure_{exp.experiment_id[:8]}")
    assert exp.add_figures(PNG, figure_names="hist", overwrite=True) == "hist"
    assert exp.figure("hist").format == "png"
    assert exp.delete_figure("hist-1") == "hist-1"
    assert exp.figure_names == ["hist", "hist-2", unnamed]
    with pytest.raises(ExperimentEntryNotFound):
        exp.figure("hist-1")
    with pytest.raises(TypeError):
        exp.add_figures(b"not an image")


def test_children_and_copy(store):
    parent = ExperimentData(store=store, experiment_type="composite", tags=["b", "a", "a"])
    child = ExperimentData(store=store, experiment_type="part")
    child.add_data({"counts": {"0": 1}})
    child.add_analysis_results(AnalysisResult("x", 1))
    parent.add_child_data(child)
    parent.add_data({"counts": {"1": 2}, "shots": 2})
    parent.add_analysis_results(AnalysisResult("y", [1, 2]))
    parent.add_figures(SVG, figure_names="f")
    parent.metadata["operator"] = "ada"
    assert child.parent_id == parent.experiment_id
    assert parent.child_data(0) is child and parent.child_data(child.experiment_id) is child
    assert parent.tags == ["a", "b"]

    twin = parent.copy()
    assert twin.experiment_id != parent.experiment_id
    assert twin.dataset.id != parent.dataset.id
    assert twin.data() == parent.data()
    assert twin.analysis_results("y").value == [1, 2]
    assert twin.analysis_results("y").result_id != parent.analysis_results("y").result_id
    assert twin.figure("f").data == SVG
    (twin_child,) = twin.child_data()
    assert twin_child.experiment_id != child.experiment_id
    assert twin_child.parent_id == twin.experiment_id
    assert twin_child.data() == child.data()
    assert twin.metadata == {"operator": "ada"} and twin.metadata is not parent.metadata

    bare = parent.copy(copy_results=False)
    assert bare.data() == parent.data()
    assert bare.analysis_results() == [] and bare.figure_names == [] and bare.child_data() == []


def _build_saved(store) -> ExperimentData:
    exp = ExperimentData(store=store, experiment_type="bell", tags=["demo"], notes="first try",
                         metadata={"shots": 1000, "qubits": [0, 1]})
    exp.add_data([{"job_id": "j1", "circuit_index": 0, "counts": {"00": 5, "11": 3},
                   "shots": 8}])
    exp.add_analysis_callback(lambda e: e.add_analysis_results(
        AnalysisResult("fidelity", 0.875, quality="good", device_components=["Q0", "Q1"],
                       extra={"z": 1 - 1j})))
    exp.block_for_results()
    exp.add_figures([histogram(), PNG], figure_names=["hist", "raw"])
    child = ExperimentData(store=store, experiment_type="part")
    child.add_data({"counts": {"0": 1}})
    exp.add_child_data(child)
    exp.save()
    return exp


def test_save_and_load_in_this_process(store):
    exp = _build_saved(store)
    same = ExperimentData.load(exp.experiment_id, store)
    assert same.experiment_type == "bell" and same.tags == ["demo"] and same.notes == "first try"
    assert same.metadata == {"shots": 1000, "qubits": [0, 1]}
    assert same.data() == exp.data()
    assert same.dataset.id == exp.dataset.id
    res = same.analysis_results("fidelity")
    assert (res.value, res.quality, res.device_components) == (0.875, "good", ["Q0", "Q1"])
    assert res.extra == {"z": 1 - 1j} and res.result_id == exp.analysis_results(0).result_id
    assert same.figure_names == ["hist", "raw"]
    assert same.figure("hist").data == exp.figure("hist").data
    assert same.figure("raw").format == "png"
    assert same.child_data(0).data() == [{"counts": {"0": 1}}]
    assert same.child_data(0).parent_id == exp.experiment_id
    assert same.status() is ExperimentStatus.DONE
    assert same.analysis_callbacks()[0]["status"] == "DONE"
    assert [s for s, _ in same.status_history][-1] == "DONE"
    assert ExperimentData.find(store, experiment_type="bell") == [exp.experiment_id]
    assert ExperimentData.find(store, parent_id=exp.experiment_id) == [
        exp.child_data(0).experiment_id]

    # Changes and deletions reach the database on the next save.
    exp.delete_figure("raw")
    exp.delete_analysis_result(0)
    exp.tags = ["demo", "redo"]
    exp.save()
    again = ExperimentData.load(exp.experiment_id, store)
    assert again.figure_names == ["hist"] and again.analysis_results() == []
    assert again.tags == ["demo", "redo"]


def test_a_loaded_experiment_adds_data_once_its_writer_is_gone(store_url):
    import qdataset

    first = qdataset.connect(store_url)
    exp = ExperimentData(store=first, experiment_type="resumed")
    exp.add_data({"counts": {"0": 3}})
    exp.save()
    with qdataset.connect(store_url) as second:
        loaded = ExperimentData.load(exp.experiment_id, second)
        with pytest.raises(qdataset.WriterActiveError, match="is writing it"):
            loaded.add_data({"counts": {"1": 4}})  # the first experiment still writes
        first.close()  # its writer is gone now
        loaded.add_data({"counts": {"1": 4}})
        assert [row["counts"] for row in loaded.data()] == [{"0": 3}, {"1": 4}]


def test_load_unknown_experiment(store):
    with pytest.raises(ExperimentNotFoundError, match="save"):
        ExperimentData.load("no-such-id", store)


def test_load_in_another_process(store, store_url, tmp_path):
    exp = _build_saved(store)
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent("""
        import hashlib, json, sys
        import qdataset
        from qdataset.experiment import ExperimentData
        store = qdataset.connect(sys.argv[1])
        exp = ExperimentData.load(sys.argv[2], store)
        print(json.dumps({
            "data": exp.data(), "tags": exp.tags, "notes": exp.notes,
            "metadata": exp.metadata, "status": exp.status().name,
            "results": [(r.name, r.value, r.quality) for r in exp.analysis_results()],
            "figures": {n: hashlib.sha256(exp.figure(n).data).hexdigest()
                        for n in exp.figure_names},
            "children": [c.data() for c in exp.child_data()],
            "jobs": exp.job_records(),
            "qiskit_imported": "qiskit" in sys.modules,
        }))
        store.close()
    """))
    out = subprocess.run([sys.executable, str(script), store_url, exp.experiment_id],
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout)
    assert got["data"] == exp.data()
    assert got["tags"] == ["demo"] and got["notes"] == "first try"
    assert got["metadata"] == {"shots": 1000, "qubits": [0, 1]}
    assert got["status"] == "DONE"
    assert got["results"] == [["fidelity", 0.875, "good"]]
    assert got["figures"] == {n: hashlib.sha256(exp.figure(n).data).hexdigest()
                              for n in ("hist", "raw")}
    assert got["children"] == [[{"counts": {"0": 1}}]]
    assert got["jobs"] == [] and got["qiskit_imported"] is False


def test_final_job_statuses_survive_save_and_load(store):
    exp = ExperimentData(store=store)

    class Failed:
        success = False
        status = "ERROR: no luck"
        job_id = "failed-job"
        results: list = []

        def get_counts(self, i):  # pragma: no cover - never called
            raise AssertionError

    exp.add_data(Failed())
    exp.save()
    same = ExperimentData.load(exp.experiment_id, store)
    assert same.job_records()[0]["status"] == "ERROR"
    assert "no luck" in same.errors()
    assert same.status() is ExperimentStatus.ERROR


def test_auto_save(store):
    exp = ExperimentData(store=store, experiment_type="auto", auto_save=True)
    assert ExperimentData.find(store, experiment_type="auto") == [exp.experiment_id]
    exp.notes = "live"
    exp.add_analysis_results(AnalysisResult("a", 1))
    exp.add_figures(SVG, figure_names="f")
    same = ExperimentData.load(exp.experiment_id, store)
    assert same.notes == "live" and same.analysis_results("a").value == 1
    assert same.figure("f").data == SVG
    child = ExperimentData(store=store)
    exp.add_child_data(child)
    assert ExperimentData.load(exp.experiment_id, store).child_data(0).experiment_id == \
        child.experiment_id


def test_tags_must_be_a_list(store):
    exp = ExperimentData(store=store)
    with pytest.raises(ExperimentDataError, match="list"):
        exp.tags = "calibration"


def test_experiment_tables_exist_after_connect(store):
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"experiments", "experiment_jobs", "experiment_callbacks", "analysis_results",
            "experiment_figures", "experiment_children",
            "experiment_status_history"} <= names


def test_str_and_repr(store):
    exp = _build_saved(store)
    text = str(exp)
    assert "Status: DONE" in text and exp.experiment_id in repr(exp)


def test_migration_0002_upgrades_from_0001_and_downgrades(sqlite_url):
    from alembic import command
    from alembic.config import Config

    import qdataset
    from qdataset.store.engine import create_engine
    from qdataset.store.migrate import migrations_dir

    engine = create_engine(sqlite_url)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))

    def run(step, target):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, target)

    run(command.upgrade, "0001")
    assert "experiments" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    store = qdataset.connect(sqlite_url)  # upgrades to head
    exp = ExperimentData(store=store, experiment_type="migrated")
    exp.save()
    store.close()
    assert "experiments" in sa.inspect(engine).get_table_names()
    engine.dispose()
    # A store holding runs cannot go back past 0005 (shared results tables are not
    # split again); 0002's downgrade is checked on a store at head without runs.
    empty_url = sqlite_url.replace("lab.db", "empty.db")
    qdataset.connect(empty_url).close()
    engine = create_engine(empty_url)
    run(command.downgrade, "0001")
    names = sa.inspect(engine).get_table_names()
    assert not {"experiments", "analysis_results", "experiment_figures"} & set(names)
    engine.dispose()
