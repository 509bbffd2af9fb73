"""Real qiskit-experiments experiments on Aer saved through ExperimentService, on SQLite
and PostgreSQL: T1, T2Hahn, a ParallelExperiment and a BatchExperiment saved, then
loaded in a fresh process and compared field by field (tags, notes, metadata with NaN
and a large part sent as a file, job ids, backend, parent/children, analysis results,
figures byte for byte, artifacts, files, raw data) and a T1 analysed again there
without its backend; auto_save from the analysis thread; deletions on the next save.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qiskit_experiments", reason="qiskit-experiments is not installed "
                    "(pip install 'qdataset[qiskit-experiments]')")
pytest.importorskip("qiskit_aer", reason="qiskit-aer is not installed "
                    "(pip install 'qdataset[experiment]')")

from qiskit.providers.fake_provider import GenericBackendV2  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_experiments.database_service import ExperimentEntryNotFound, Qubit  # noqa: E402
from qiskit_experiments.framework import (  # noqa: E402
    BatchExperiment,
    ExperimentData,
    ExperimentEncoder,
    ParallelExperiment,
)
from qiskit_experiments.library import T1, T2Hahn  # noqa: E402
from qiskit_experiments.library.characterization.analysis import T1Analysis  # noqa: E402

from qdataset.experiment import ExperimentService  # noqa: E402

T1_DELAYS = np.linspace(0, 150e-6, 5)
T2_DELAYS = np.linspace(0, 60e-6, 5)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"IEND"
TESTS = Path(__file__).resolve().parent


def _backend() -> AerSimulator:
    return AerSimulator.from_backend(GenericBackendV2(num_qubits=2, seed=11), seed_simulator=5)


def _t1(backend, qubit: int = 0, **run) -> ExperimentData:
    exp = T1(physical_qubits=(qubit,), delays=T1_DELAYS)
    exp.set_run_options(shots=64)
    return exp.run(backend, **run).block_for_results()


def _composites(backend) -> tuple[ExperimentData, ExperimentData]:
    parallel = ParallelExperiment([T1((0,), T1_DELAYS), T1((1,), T1_DELAYS)],
                                  flatten_results=False)
    batch = BatchExperiment([T1((1,), T1_DELAYS), T2Hahn((0,), T2_DELAYS)],
                            flatten_results=False)
    out = []
    for composite in (parallel, batch):
        composite.set_run_options(shots=64)
        out.append(composite.run(backend).block_for_results())
    return out[0], out[1]


# -- one comparable picture of an ExperimentData (used by both processes) -------------------
def canon(value):
    """``value`` as plain JSON through qiskit-experiments' encoder: sets sorted, NaN named."""
    def walk(item):
        if isinstance(item, float) and math.isnan(item):
            return "NaN"
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, dict):
            if item.get("__type__") == "set":
                return {"set": sorted((walk(v) for v in item["__value__"]), key=json.dumps)}
            return {k: walk(v) for k, v in item.items()}
        return item
    return walk(json.loads(json.dumps(value, cls=ExperimentEncoder)))


def picture(exp: ExperimentData, figures: dict[str, bytes] | None = None,
            with_data: bool = True) -> dict:
    """Everything the service should give back, children included; ``figures``: the
    bytes by name if the caller has them (else read through ``exp.figure``)."""
    results = exp.analysis_results(dataframe=True, columns="all")
    rows = []
    for result_id, row in results.iterrows():
        fields = {k: v for k, v in row.to_dict().items() if k != "created_time"}
        rows.append(canon({"id": result_id, **fields}))
    figure_hashes = {}
    for name in exp.figure_names:
        data = figures[name] if figures is not None else exp.figure(name).figure
        figure_hashes[name] = hashlib.sha256(data).hexdigest()
    metadata = {k: v for k, v in exp.metadata.items() if k != "child_data_ids"}
    return {
        "id": exp.experiment_id, "type": exp.experiment_type, "tags": exp.tags,
        "notes": exp.notes, "backend": exp.backend_name, "parent": exp.parent_id,
        "job_ids": list(exp.job_ids), "metadata": canon(metadata),
        "start": exp.start_datetime.isoformat(), "results": rows, "figures": figure_hashes,
        "artifacts": sorted(canon([a.name, a.artifact_id, a.data]) for a in exp.artifacts()),
        "data": canon(exp.data()) if with_data else None,
        "children": [picture(child, None if figures is None else figures, with_data=False)
                     for child in exp.child_data()],
    }


def loaded_pictures(url: str, ids: list[str]) -> dict:
    """Run in the fresh process: load each experiment and describe it; analyse the first
    (a T1) again from its kept job results."""
    service = ExperimentService(url)
    out = {"pictures": [picture(service.load(eid)) for eid in ids]}
    again = T1Analysis().run(service.load(ids[0]), replace_results=True).block_for_results()
    value = again.analysis_results("T1", dataframe=True).iloc[0]["value"]
    out["reanalysed"] = [value.nominal_value, value.std_dev]
    out["without_provider"] = len(ExperimentData.load(ids[0], service).data())
    out["yaml"] = service.file_download(ids[0], "settings.yaml")
    return out


def _figure_bytes(service: ExperimentService, exp: ExperimentData) -> dict[str, bytes]:
    found = {}
    for data in [exp, *exp.child_data()]:
        for name in data.figure_names:
            found[name] = service.figure(data.experiment_id, name)
    return found


@pytest.mark.slow
def test_saved_experiments_come_back_in_a_fresh_process(store_url):
    backend = _backend()
    t1 = _t1(backend)
    t2 = T2Hahn((1,), T2_DELAYS)
    t2.set_run_options(shots=64)
    t2 = t2.run(backend).block_for_results()
    parallel, batch = _composites(backend)

    t1.tags = ["cooldown-3", "t1"]
    t1.notes = "fresh sample"
    t1.metadata.update({"nan": float("nan"), "inf": float("inf"), "levels": {1, 2},
                        "big": np.random.default_rng(3).random(2000)})  # too large: a file
    t1.add_figures(PNG, "raw.png")
    t1.add_analysis_result(name="extra", value=np.array([1.0, np.inf]), quality="good",
                           components=[Qubit(0)], tags=["x"], spread=float("inf"))

    with ExperimentService(store_url) as service:
        kept = {}
        for exp in (t1, t2, parallel, batch):
            kept[exp.experiment_id] = service.save(exp)
        service.file_upload(t1.experiment_id, "settings.yaml", {"shots": 64, "qubits": [0]})
        assert kept[t1.experiment_id] == t1.job_ids and len(kept[batch.experiment_id]) >= 1
        assert service.experiment_has_file(t1.experiment_id, "metadata.json")
        assert service.experiment(t1.experiment_id).metadata == {}  # sent as the file
        child = parallel.child_data(0)
        assert service.experiment(child.experiment_id).parent_id == parallel.experiment_id
        expected = [picture(exp, _figure_bytes(service, exp)) for exp in (t1, t2, parallel, batch)]
    assert t1.figure("raw.png").figure == PNG

    ids = [exp.experiment_id for exp in (t1, t2, parallel, batch)]
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(TESTS)!r})
        from test_experiment_service_aer import loaded_pictures
        print(json.dumps(loaded_pictures({store_url!r}, {ids!r})))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])

    for want, got in zip(canon(expected), loaded["pictures"], strict=True):
        assert got == want
    assert loaded["pictures"][0]["figures"]["raw.png.svg"] == hashlib.sha256(PNG).hexdigest()
    assert len(loaded["pictures"][2]["children"]) == 2  # parallel: both T1s
    original = t1.analysis_results("T1", dataframe=True).iloc[0]["value"]
    assert loaded["reanalysed"] == pytest.approx([original.nominal_value, original.std_dev],
                                                 rel=1e-9)
    assert loaded["without_provider"] == 0  # the raw data comes from the service's provider
    assert loaded["yaml"] == {"shots": 64, "qubits": [0]}


def test_a_loaded_t1_has_its_data_and_analyses_again_without_its_backend(store):
    original = _t1(_backend())
    ExperimentService(store).save(original)
    loaded = ExperimentService(store).load(original.experiment_id)   # no backend anywhere
    assert loaded.backend is None
    assert canon(loaded.data()) == canon(original.data())
    again = T1Analysis().run(loaded, replace_results=True).block_for_results()
    before = original.analysis_results("T1", dataframe=True).iloc[0]["value"]
    after = again.analysis_results("T1", dataframe=True).iloc[0]["value"]
    assert (after.nominal_value, after.std_dev) == pytest.approx(
        (before.nominal_value, before.std_dev), rel=1e-9)


def test_backend_run_results_are_kept_too(store):
    original = _t1(_backend(), backend_run=True)
    service = ExperimentService(store)
    assert service.save(original) == original.job_ids
    loaded = ExperimentService(store).load(original.experiment_id)
    assert canon(loaded.data()) == canon(original.data())
    assert loaded.data(0)["counts"] == original.data(0)["counts"]


def test_auto_save_persists_each_change_from_the_analysis_thread(store):
    exp = T1(physical_qubits=(0,), delays=T1_DELAYS)
    exp.set_run_options(shots=64)
    data = exp.run(_backend(), analysis=None).block_for_results()
    data.service = ExperimentService(store, auto_save=True)   # saved now
    assert data.auto_save
    other = ExperimentService(store)  # what another reader of the store sees
    eid = data.experiment_id
    assert other.experiment(eid).job_ids == data.job_ids

    exp.analysis.run(data, replace_results=True).block_for_results()  # on a worker thread
    assert [r.result_type for r in other.analysis_results(experiment_id=eid)] == ["T1"]
    figure = data.figure_names[0]
    assert other.figure(eid, figure).lstrip().startswith(b"<?xml")  # the SVG it rendered

    data.tags = ["auto"]
    data.notes = "saved at once"
    stored = other.experiment(eid)
    assert (stored.tags, stored.notes) == (["auto"], "saved at once")
    data.delete_figure(figure)
    assert other.experiment(eid).figure_names == []
    with pytest.raises(ExperimentEntryNotFound, match=figure):
        other.figure(eid, figure)
    data.delete_analysis_result("T1")
    assert other.analysis_results(experiment_id=eid) == []


def test_local_deletions_reach_the_store_on_the_next_save(store):
    data = _t1(_backend())
    service = ExperimentService(store)
    service.save(data)
    eid = data.experiment_id
    old_figure = data.figure_names[0]
    old_ids = [r.result_id for r in service.analysis_results(experiment_id=eid)]
    assert old_ids and service.experiment_has_file(eid, "curve_data.zip")

    data.delete_analysis_result("T1")
    data.delete_figure(old_figure)
    data.delete_artifact("curve_data")
    assert [r.result_id for r in service.analysis_results(experiment_id=eid)] == old_ids
    data.save()
    assert service.analysis_results(experiment_id=eid) == []
    assert service.experiment(eid).figure_names == []
    with pytest.raises(ExperimentEntryNotFound, match=old_figure):
        service.figure(eid, old_figure)
    assert not service.experiment_has_file(eid, "curve_data.zip")
    assert service.experiment_has_file(eid, "fit_summary.zip")

    # Analysed again in place: the new results and figure replace the old on save.
    T1Analysis().run(data, replace_results=True).block_for_results()
    data.save()
    new_ids = [r.result_id for r in service.analysis_results(experiment_id=eid)]
    assert len(new_ids) == 1 and new_ids[0] not in old_ids
    assert service.experiment(eid).figure_names == data.figure_names
    # qiskit-experiments 0.14 uploads a re-made artifact and then deletes the old one of
    # the same name in the same save (file_delete after file_upload), so the store lacks
    # it until the next save uploads it again.
    assert not service.experiment_has_file(eid, "fit_summary.zip")
    data.save()
    loaded = service.load(eid)
    assert sorted(a.name for a in loaded.artifacts()) == sorted(a.name for a in data.artifacts())
