"""ExperimentData with real qiskit-aer jobs: exact seeded counts, noise, primitives, failures."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import ClassicalRegister, QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit import Gate, Parameter  # noqa: E402
from qiskit.providers.fake_provider import GenericBackendV2  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.primitives import EstimatorV2, SamplerV2  # noqa: E402

from qdataset.experiment import (  # noqa: E402
    AnalysisStatus,
    ExperimentData,
    ExperimentStatus,
    JobStatus,
)


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    qc.metadata = {"circuit": "bell"}
    return qc


def zero() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2, name="zero")
    qc.measure([0, 1], [0, 1])
    qc.metadata = {"circuit": "zero"}
    return qc


def test_seeded_aer_job_rows_are_exact(store):
    backend = AerSimulator(seed_simulator=7)
    exp = ExperimentData(store=store, backend=backend, experiment_type="bell")
    job = backend.run([bell(), zero()], shots=1000)
    exp.add_jobs(job)
    assert exp.block_for_results(timeout=60) is exp
    assert exp.status() is ExperimentStatus.DONE
    assert exp.job_status() is JobStatus.DONE
    assert exp.backend_name == "aer_simulator"

    rows = exp.data()
    assert [r["counts"] for r in rows] == [{"11": 511, "00": 489}, {"00": 1000}]
    assert rows[0]["job_id"] == job.job_id() and rows[1]["circuit_index"] == 1
    assert rows[0]["shots"] == 1000 and rows[0]["meas_level"] == 2
    assert rows[1]["metadata"] == {"circuit": "zero"}
    assert "memory" not in rows[0]
    assert exp.data(-1) == rows[1] and exp.data(slice(0, 1)) == rows[:1]
    assert exp.data(job.job_id()) == rows and exp.data("no-such-job") == []

    # The rows are an ordinary run: numpy reads work on them.
    job_ids, shots, counts = exp.dataset.get_data("job_id", "shots", "counts")
    assert job_ids.dtype.kind == "U" and list(job_ids) == [job.job_id()] * 2
    assert shots.dtype == np.int64 and shots.tolist() == [1000, 1000]
    assert json.loads(counts[1]) == {"00": 1000}
    assert exp.dataset.get_metadata("experiment_id") == exp.experiment_id

    (record,) = exp.job_records()
    assert record["status"] == "DONE" and record["backend_name"] == "aer_simulator"
    assert record["finished_at"] >= record["submitted_at"]


def test_memory_is_stored_when_present(store):
    backend = AerSimulator(seed_simulator=7)
    exp = ExperimentData(store=store, backend=backend)
    exp.add_jobs(backend.run(zero(), shots=5, memory=True))
    exp.block_for_results(timeout=60)
    assert exp.data(0)["memory"] == ["00"] * 5


def test_noisy_generic_backend_run(store):
    backend = GenericBackendV2(num_qubits=2, seed=11)
    exp = ExperimentData(store=store, backend=backend, experiment_type="bell-noisy")
    exp.add_jobs(backend.run(transpile(bell(), backend, seed_transpiler=1), shots=4000,
                             seed_simulator=3))
    exp.block_for_results(timeout=60)
    assert exp.status() is ExperimentStatus.DONE
    assert exp.backend_name == "generic_backend_2q"
    assert exp.data(0)["counts"] == {"01": 11, "11": 1965, "10": 19, "00": 2005}


def test_sampler_v2_counts_per_register_and_sweep_point(store):
    theta = Parameter("t")
    swept = QuantumCircuit(1)
    swept.ry(theta, 0)
    swept.measure_all()
    two = QuantumCircuit(2)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(1, "b")
    two.add_register(a)
    two.add_register(b)
    two.x(0)
    two.measure(0, a[0])
    two.measure(1, b[0])
    job = SamplerV2(seed=3).run([(swept, [[0.0], [np.pi]]), two], shots=50)
    exp = ExperimentData(store=store, experiment_type="sampler")
    exp.add_jobs(job)
    exp.block_for_results(timeout=60)
    assert exp.status() is ExperimentStatus.DONE
    rows = exp.data()
    assert [(r["circuit_index"], r["register"], r["loc"], r["counts"]) for r in rows] == [
        (0, "meas", (0,), {"0": 50}),
        (0, "meas", (1,), {"1": 50}),
        (1, "a", (), {"1": 50}),
        (1, "b", (), {"0": 50}),
    ]
    assert all(r["kind"] == "sampler" and r["shots"] == 50 for r in rows)
    assert exp.job_records()[0]["kind"] == "sampler"


def test_estimator_v2_expectation_values(store):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    job = EstimatorV2().run([(qc, [SparsePauliOp("ZZ"), SparsePauliOp("XX"), SparsePauliOp("ZI")])])
    exp = ExperimentData(store=store)
    exp.add_jobs(job)
    exp.block_for_results(timeout=60)
    assert exp.status() is ExperimentStatus.DONE
    evs, stds = exp.dataset.get_data("evs", "stds")
    np.testing.assert_allclose(evs, [1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(stds, [0.0, 0.0, 0.0], atol=1e-12)
    assert [r["loc"] for r in exp.data()] == [(0,), (1,), (2,)]
    assert exp.data(0)["kind"] == "estimator"


def test_error_job_is_recorded_and_cancels_analysis(store):
    qc = QuantumCircuit(1, 1)
    qc.append(Gate("mystery", 1, []), [0])
    qc.measure(0, 0)
    exp = ExperimentData(store=store)
    exp.add_jobs(AerSimulator().run(qc, shots=10))
    called = []
    exp.add_analysis_callback(lambda e: called.append(e))
    exp.block_for_results(timeout=60)
    assert exp.job_status() is JobStatus.ERROR
    assert exp.status() is ExperimentStatus.ERROR
    assert "unknown instruction: mystery" in exp.errors()
    assert exp.analysis_status() is AnalysisStatus.CANCELLED and called == []
    assert exp.data() == []


def test_done_but_failed_job_is_an_error_with_the_message(store):
    big = QuantumCircuit(40, 40)
    big.h(range(40))
    big.t(range(40))
    big.measure(range(40), range(40))
    job = AerSimulator(seed_simulator=1).run(big, shots=10)
    exp = ExperimentData(store=store)
    exp.add_jobs(job)
    exp.block_for_results(timeout=60)
    assert job.status().name == "DONE"  # the backend thinks it went fine ...
    assert exp.job_status() is JobStatus.ERROR  # ... but the result says otherwise
    assert exp.status() is ExperimentStatus.ERROR
    assert "Insufficient memory" in exp.errors()
    assert exp.job_records()[0]["status"] == "ERROR"


@pytest.fixture
def busy_aer():
    """Aer runs jobs one at a time on one executor: keep it busy so new jobs stay queued."""
    gate = threading.Event()
    executor = AerSimulator().run(zero(), shots=1).executor()
    executor.submit(gate.wait)
    yield AerSimulator(seed_simulator=7)
    gate.set()


def test_cancelled_queued_aer_job(store, busy_aer):
    backend = busy_aer
    job = backend.run(bell(), shots=10)
    exp = ExperimentData(store=store, backend=backend)
    exp.add_jobs(job)
    assert exp.job_status() is JobStatus.INITIALIZING
    assert exp.status() is ExperimentStatus.INITIALIZING
    assert exp.cancel_jobs() is True
    assert job.status().name == "CANCELLED"
    assert exp.job_status() is JobStatus.CANCELLED
    assert exp.status() is ExperimentStatus.CANCELLED
    assert exp.job_records()[0]["error_message"] == "cancelled by cancel_jobs()"
    exp.block_for_results(timeout=60)
    assert exp.data() == []


def test_add_jobs_timeout_cancels_a_queued_aer_job(store, busy_aer):
    backend = busy_aer
    job = backend.run(bell(), shots=10)
    exp = ExperimentData(store=store, backend=backend)
    exp.add_jobs(job, timeout=0.05)
    exp.block_for_results(timeout=60)  # returns once the timeout was recorded
    assert exp.job_status() is JobStatus.CANCELLED
    assert "add_jobs timeout" in exp.job_records()[0]["error_message"]
    assert job.status().name == "CANCELLED"
