"""The Aer worker, the qdataset worker command and QueueBackend."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import qdataset
from qdataset.jobs import (
    FolderQueue,
    JobFailedError,
    JobQueue,
    PayloadError,
    QueueBackend,
    Worker,
    encode_circuits,
)

pytest.importorskip("qiskit_aer")


def bell(name="bell"):
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2, name=name)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def ghz3():
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(3, 3, name="ghz")
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure(range(3), range(3))
    return qc


@pytest.fixture
def queue(store):
    return JobQueue(store)


def test_import_does_not_load_qiskit():
    code = ("import sys, qdataset.jobs as j; j.JobQueue; j.FolderQueue; j.JobWatcher; "
            "j.EmailNotifier; j.Worker; j.QueueBackend; "
            "assert not any(m == 'qiskit' or m.startswith('qiskit.') for m in sys.modules), "
            "'qiskit imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fmt", ["qpy", "qasm3"])
def test_worker_runs_real_circuits(queue, fmt):
    from qiskit.result import Result

    worker = Worker(queue, "aer")
    assert queue.get_config("aer")["simulator"] is True  # uploaded by the worker
    payload = {"format": fmt, "circuits": encode_circuits([bell(), ghz3()], fmt),
               "shots": 300, "seed_simulator": 11}
    job_id = queue.submit("aer", payload, username="alice")
    assert worker.run(once=True) == 1
    assert queue.status(job_id).status == "DONE"
    result = Result.from_dict(queue.result(job_id))
    counts = result.get_counts()
    assert set(counts[0]) == {"00", "11"} and sum(counts[0].values()) == 300
    assert set(counts[1]) == {"000", "111"}
    assert result.job_id == job_id
    if fmt == "qpy":
        assert result.results[0].header["name"] == "bell"


def test_worker_survives_bad_jobs(queue):
    worker = Worker(queue, "aer")
    good = {"format": "qpy", "circuits": encode_circuits(bell()), "shots": 50}
    ids = [
        queue.submit("aer", {"format": "qasm3", "circuits": ["this is not qasm"], "shots": 5}),
        queue.submit("aer", {"format": "qpy", "circuits": ["!!!not base64!!!"], "shots": 5}),
        queue.submit("aer", {"format": "qpy", "circuits": encode_circuits(bell()),
                             "shots": 10**9}),
        queue.submit("aer", {"circuits": []}),
        queue.submit("aer", good),
    ]
    assert worker.run(once=True) == 5
    states = [queue.status(i) for i in ids]
    assert [s.status for s in states] == ["ERROR"] * 4 + ["DONE"]
    assert "circuit 0 is not valid OpenQASM 3" in states[0].error_message
    assert "base64 QPY" in states[1].error_message
    assert "allows 1000000" in states[2].error_message
    assert "format" in states[3].error_message
    assert (worker.done, worker.failed) == (1, 4)


def test_check_payload_messages():
    from qdataset.jobs.worker import check_payload

    with pytest.raises(PayloadError, match="positive integer"):
        check_payload({"format": "qpy", "circuits": ["x"], "shots": 0})
    with pytest.raises(PayloadError, match="unknown keys"):
        check_payload({"format": "qpy", "circuits": ["x"], "shots": 1, "noise": 1})
    with pytest.raises(PayloadError, match="seed_simulator"):
        check_payload({"format": "qpy", "circuits": ["x"], "shots": 1, "seed_simulator": "7"})


def test_worker_command(store_url, capsys):
    from qdataset.cli import main

    with qdataset.connect(store_url) as store:
        queue = JobQueue(store)
        queue.upload_config("aer", {"max_shots": 100})
        done = queue.submit("aer", {"format": "qasm3", "circuits": encode_circuits(
            bell(), "qasm3"), "shots": 20})
        bad = queue.submit("aer", {"format": "qasm3", "circuits": ["nope"], "shots": 20})
    assert main(["worker", "--backend", "aer", "--url", store_url, "--once",
                 "--poll", "0.1", "--quiet"]) == 0
    assert "1 job(s) done, 1 failed" in capsys.readouterr().out
    with qdataset.connect(store_url) as store:
        queue = JobQueue(store)
        assert queue.status(done).status == "DONE"
        assert queue.status(bad).status == "ERROR"


def test_worker_command_on_a_folder(tmp_path, capsys):
    from qdataset.cli import main

    queue = FolderQueue(tmp_path / "q")
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"format": "qpy", "circuits": encode_circuits(bell()),
                                  "shots": 10})
    assert main(["worker", "--backend", "aer", "--folder", str(tmp_path / "q"),
                 "--once", "--quiet"]) == 0
    assert queue.result(job_id)["results"][0]["shots"] == 10


def test_queue_backend_run_and_result(store):
    from qiskit.providers import JobStatus
    from qiskit.result import Result

    backend = QueueBackend(store, "aer")
    job = backend.run([bell(), ghz3()], shots=400, seed_simulator=5)
    assert job.status() is JobStatus.QUEUED
    assert backend.status().pending_jobs == 1
    worker = Worker(JobQueue(store), "aer", poll=0.02)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        result = job.result(timeout=30)
        qasm_job = QueueBackend(store, "aer", format="qasm3").run(bell(), shots=64)
        assert sum(qasm_job.result(timeout=30).get_counts().values()) == 64
    finally:
        worker.stop()
        thread.join(10)
    assert isinstance(result, Result)
    assert job.status() is JobStatus.DONE and job.done() and job.in_final_state()
    assert result.job_id == job.job_id()
    counts = result.get_counts()
    assert set(counts[0]) == {"00", "11"} and set(counts[1]) == {"000", "111"}
    assert sum(counts[1].values()) == 400


def test_queue_backend_failed_and_cancelled_jobs(store):
    from qiskit.providers import JobStatus

    backend = QueueBackend(store, "aer")
    job = backend.run(bell(), shots=10)
    assert job.cancel() is True
    assert job.status() is JobStatus.CANCELLED and job.cancelled()
    with pytest.raises(JobFailedError, match="CANCELLED"):
        job.result(timeout=5)
    failing = backend.run(bell(), shots=10)
    queue = JobQueue(store)
    queue.claim_next("aer")
    queue.fail(failing.job_id(), "the cryostat warmed up")
    assert failing.cancel() is False
    assert failing.status() is JobStatus.ERROR
    assert failing.error_message() == "the cryostat warmed up"
    with pytest.raises(JobFailedError, match="cryostat"):
        failing.result()
    with pytest.raises(qdataset.QDatasetError, match="did not finish"):
        backend.run(bell(), shots=10).result(timeout=0.1)


def test_queue_backend_over_a_folder_queue(tmp_path):
    queue = FolderQueue(tmp_path / "q")
    backend = QueueBackend(queue, "aer")
    job = backend.run(bell(), shots=32)
    Worker(queue, "aer").run(once=True)
    assert sum(job.result(timeout=10).get_counts().values()) == 32


def test_queued_job_is_watched_and_ingested_by_an_experiment(store):
    """The issue's 'done when': a queued job inside an ExperimentData, with a notification."""
    try:
        from qdataset.experiment import ExperimentData
    except ImportError:  # the experiment layer is optional
        pytest.skip("qdataset.experiment is not available")
    from qdataset.jobs import JobWatcher

    events = []
    backend = QueueBackend(store, "aer")
    job = backend.run(bell(), shots=128, seed_simulator=1)
    watcher = JobWatcher(store, [events.append], poll_interval=0.02)
    watcher.register_job(job)
    exp = ExperimentData(store=store, experiment_type="bell")
    exp.add_jobs(job)
    worker = Worker(JobQueue(store), "aer", poll=0.02)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        with watcher:
            exp.block_for_results(timeout=30)
            job.result(timeout=30)
    finally:
        worker.stop()
        thread.join(10)
    assert exp.status().name == "DONE"
    assert sum(exp.data(0)["counts"].values()) == 128
    assert [(e.job_id, e.status) for e in events] == [(job.job_id(), "DONE")]
