"""The Bell example runs end to end; experiment rows behave like any run (cursor, live view)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("qiskit_aer")
pytest.importorskip("matplotlib")

from qiskit import QuantumCircuit  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402

from qdataset.experiment import ExperimentData  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bell_experiment.py"


def test_bell_example(store, store_url, capsys):
    spec = importlib.util.spec_from_file_location("bell_experiment", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exp = module.main(["--url", store_url, "--shots", "400"])
    out = capsys.readouterr().out
    assert "Status: DONE" in out and "Bell fidelity: 1.0000 (good)" in out
    same = ExperimentData.load(exp.experiment_id, store)
    assert same.analysis_results("bell_fidelity").value == 1.0
    assert same.figure("histogram").format == "svg"
    assert [r["metadata"]["basis"] for r in same.data()] == ["z", "x"]


def test_rows_arrive_like_any_measurement(store):
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    backend = AerSimulator(seed_simulator=1)
    exp = ExperimentData(store=store, backend=backend)
    cursor = exp.dataset.cursor(0)
    view = store.read_dataset(exp.dataset.id)  # e.g. a plotting process
    exp.add_jobs(backend.run([qc, qc], shots=10))
    exp.block_for_results(timeout=60)
    (counts,) = cursor.read("counts")
    assert [json.loads(c) for c in counts] == [{"1": 10}, {"1": 10}]
    assert cursor.read("counts")[0].size == 0
    exp.save()  # flushes
    assert view.length == 2
