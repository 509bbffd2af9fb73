"""One test suite for both queue providers: JobQueue (database) and FolderQueue (folders)."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

import qdataset
from qdataset.jobs import (
    BackendNotFoundError,
    FolderQueue,
    InvalidTransitionError,
    JobFailedError,
    JobNotFoundError,
    JobQueue,
    PayloadError,
    ResultNotReadyError,
)


@pytest.fixture(params=["db-sqlite", "db-postgresql", "folder"])
def make_queue(request, tmp_path):
    """A factory: each call opens the same queue again (another 'process').

    JobQueue runs on both engines; FolderQueue keeps nothing in a database.
    """
    opened = []
    schema = None
    if request.param == "db-postgresql":
        from conftest import drop_postgres_schema, postgres_schema_url

        schema, url = postgres_schema_url()
    elif request.param == "db-sqlite":
        url = f"sqlite:///{tmp_path / 'lab.db'}"
    if request.param.startswith("db"):

        def factory():
            store = qdataset.connect(url)
            opened.append(store)
            return JobQueue(store)

        factory.spec = ("db", url)
    else:
        root = tmp_path / "sqooler"

        def factory():
            return FolderQueue(root)

        factory.spec = ("folder", str(root))
    yield factory
    for store in opened:
        store.close()
    if schema is not None:
        drop_postgres_schema(schema)


@pytest.fixture
def queue(make_queue):
    q = make_queue()
    q.upload_config("aer", {"backend_version": "0.18", "max_shots": 1000})
    return q


def test_configs_and_backends(make_queue):
    q = make_queue()
    assert q.backends() == []
    q.upload_config("zeta", {"operational": False, "status_msg": "maintenance"})
    q.upload_config("aer", {"backend_version": "0.18"})
    assert q.backends() == ["aer", "zeta"]
    assert q.get_config("aer") == {"backend_version": "0.18", "display_name": "aer"}
    q.upload_config("aer", {"backend_version": "0.19"})
    assert make_queue().get_config("aer")["backend_version"] == "0.19"
    status = q.backend_status("zeta")
    assert (status.operational, status.status_msg, status.pending_jobs) == (
        False, "maintenance", 0)
    with pytest.raises(BackendNotFoundError, match="upload_config"):
        q.get_config("nope")
    with pytest.raises(BackendNotFoundError):
        q.backend_status("nope")
    with pytest.raises(PayloadError, match="backend name"):
        q.upload_config("../evil", {})
    with pytest.raises(PayloadError, match="must be a dict"):
        q.upload_config("aer", ["not", "a", "dict"])
    with pytest.raises(PayloadError, match="display_name"):
        q.upload_config("aer", {"display_name": "other"})


def test_lifecycle_done(queue):
    job_id = queue.submit("aer", {"shots": 10, "n": [1, 2]}, username="alice")
    state = queue.status(job_id)
    assert (state.job_id, state.status, state.error_message) == (job_id, "QUEUED", None)
    assert queue.backend_status("aer").pending_jobs == 1
    with pytest.raises(ResultNotReadyError, match="QUEUED"):
        queue.result(job_id)
    claim = queue.claim_next("aer", worker="w1")
    assert (claim.job_id, claim.payload, claim.username) == (
        job_id, {"shots": 10, "n": [1, 2]}, "alice")
    assert queue.status(job_id).status == "RUNNING"
    assert queue.claim_next("aer") is None
    assert queue.backend_status("aer").pending_jobs == 0
    assert queue.backend_status("aer").last_queue_check is not None
    queue.finish(job_id, {"counts": {"0": 10}})
    assert queue.status(job_id).status == "DONE"
    assert queue.result(job_id) == {"counts": {"0": 10}}
    assert queue.payload(job_id) == {"shots": 10, "n": [1, 2]}
    assert queue.jobs(status="DONE") == [job_id]


def test_fifo_and_backends_are_separate(queue):
    queue.upload_config("other", {})
    ids = [queue.submit("aer", {"i": i}) for i in range(5)]
    other = queue.submit("other", {"i": 99})
    assert [queue.claim_next("aer").payload["i"] for _ in range(5)] == list(range(5))
    assert queue.claim_next("aer") is None
    assert queue.claim_next("other").job_id == other
    assert queue.jobs(backend="aer") == ids


def test_failed_jobs_are_kept(queue):
    job_id = queue.submit("aer", {"x": 1})
    queue.claim_next("aer")
    queue.fail(job_id, "simulator exploded")
    state = queue.status(job_id)
    assert (state.status, state.error_message) == ("ERROR", "simulator exploded")
    with pytest.raises(JobFailedError, match="simulator exploded"):
        queue.result(job_id)
    assert queue.payload(job_id) == {"x": 1}  # never lost
    queued = queue.submit("aer", {"x": 2})
    queue.fail(queued, "rejected before running")  # QUEUED -> ERROR is allowed
    assert queue.status(queued).status == "ERROR"


def test_invalid_transitions(queue):
    job_id = queue.submit("aer", {"x": 1})
    with pytest.raises(InvalidTransitionError, match="is QUEUED.*claim_next"):
        queue.finish(job_id, {"r": 1})
    queue.claim_next("aer")
    with pytest.raises(InvalidTransitionError, match="cancel"):
        queue.cancel(job_id)
    queue.finish(job_id, {"r": 1})
    with pytest.raises(InvalidTransitionError, match="is DONE"):
        queue.finish(job_id, {"r": 2})
    with pytest.raises(InvalidTransitionError, match="is DONE"):
        queue.fail(job_id, "late")
    assert queue.result(job_id) == {"r": 1}
    cancelled = queue.submit("aer", {"x": 2})
    queue.cancel(cancelled)
    assert queue.status(cancelled).status == "CANCELLED"
    assert queue.claim_next("aer") is None
    with pytest.raises(JobFailedError, match="CANCELLED"):
        queue.result(cancelled)
    with pytest.raises(JobNotFoundError, match="submit"):
        queue.status("0123456789abcdef01234567")
    with pytest.raises(JobNotFoundError):
        queue.finish("0123456789abcdef01234567", {})
    assert isinstance(InvalidTransitionError("x"), qdataset.QDatasetError)


def test_malformed_payloads_and_results(queue):
    with pytest.raises(PayloadError, match="must be a dict"):
        queue.submit("aer", ["circuit"])
    with pytest.raises(PayloadError, match="JSON"):
        queue.submit("aer", {"x": object()})
    with pytest.raises(PayloadError, match="JSON"):
        queue.submit("aer", {"x": float("nan")})
    with pytest.raises(BackendNotFoundError, match="upload_config"):
        queue.submit("missing", {"x": 1})
    assert queue.jobs() == []
    job_id = queue.submit("aer", {"x": 1})
    queue.claim_next("aer")
    with pytest.raises(PayloadError, match="must be a dict"):
        queue.finish(job_id, "done!")
    with pytest.raises(PayloadError, match="error message"):
        queue.fail(job_id, "")
    assert queue.status(job_id).status == "RUNNING"  # a bad call changes nothing
    with pytest.raises(PayloadError, match="job id"):
        queue.status("../../etc/passwd")


def test_numpy_values_are_stored_as_json(queue):
    np = pytest.importorskip("numpy")
    job_id = queue.submit("aer", {"shots": np.int64(5), "angles": np.array([0.5, 1.5])})
    assert queue.claim_next("aer").payload == {"shots": 5, "angles": [0.5, 1.5]}
    queue.finish(job_id, {"value": np.float64(0.25)})
    assert queue.result(job_id) == {"value": 0.25}


def _claimer(spec, barrier, out):
    kind, where = spec
    # Claims held without renewal for the whole test: a lease longer than the test.
    if kind == "db":
        store = qdataset.connect(where)
        queue = JobQueue(store, lease_timeout=600)
    else:
        queue = FolderQueue(where, lease_timeout=600)
    barrier.wait()
    got = []
    while True:
        claim = queue.claim_next("aer", worker=str(os.getpid()))
        if claim is None:
            break
        got.append(claim.job_id)
    out.put(got)
    # Stay alive until every claimer is done: a claimer whose process is gone
    # loses its claims (its jobs are requeued by the next claim_next on this host).
    barrier.wait()
    if kind == "db":
        store.close()


@pytest.mark.slow  # starts several Python processes
def test_claim_is_exactly_once_across_processes(make_queue, queue):
    ids = [queue.submit("aer", {"i": i}) for i in range(200)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(make_queue.spec, barrier, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    claimed = [job_id for got in results for job_id in got]
    assert len(claimed) == 200
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(queue.status(i).status == "RUNNING" for i in ids[:5])


def test_folder_layout_is_sqoolers(tmp_path):
    root = tmp_path / "storage"
    queue = FolderQueue(root)
    queue.upload_config("aer", {"max_shots": 10})
    assert json.loads((root / "backends/configs/aer.json").read_text())["max_shots"] == 10
    job_id = queue.submit("aer", {"x": 1})
    assert json.loads((root / f"jobs/queued/aer/{job_id}.json").read_text()) == {"x": 1}
    status = json.loads((root / f"status/aer/{job_id}.json").read_text())
    assert (status["job_id"], status["status"]) == (job_id, "QUEUED")
    queue.claim_next("aer")
    assert (root / f"jobs/running/aer/{job_id}.json").is_file()
    queue.finish(job_id, {"r": 1})
    assert (root / f"jobs/finished/aer/{job_id}.json").is_file()
    assert json.loads((root / f"results/aer/{job_id}.json").read_text()) == {"r": 1}
    failed = queue.submit("aer", {"x": 2})
    queue.claim_next("aer")
    queue.fail(failed, "bad")
    assert (root / f"jobs/deleted/aer/{failed}.json").is_file()
    assert json.loads((root / f"status/aer/{failed}.json").read_text())["error_message"] == "bad"


def test_folder_reads_a_folder_written_by_sqooler(tmp_path):
    """sqooler keeps running and deleted jobs without a backend folder; status 'None'."""
    root = tmp_path / "legacy"
    for rel, content in {
        "backends/configs/fermions.json": {"display_name": "fermions", "num_wires": 8},
        "jobs/queued/fermions/aaa.json": {"experiment_0": {"shots": 3}},
        "jobs/running/bbb.json": {"experiment_0": {"shots": 4}},
        "status/fermions/aaa.json": {"job_id": "aaa", "status": "INITIALIZING",
                                     "detail": "Got your json.", "error_message": "None"},
        "status/fermions/bbb.json": {"job_id": "bbb", "status": "RUNNING",
                                     "detail": "", "error_message": "None"},
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    queue = FolderQueue(root)
    assert queue.backends() == ["fermions"]
    assert queue.status("aaa").status == "INITIALIZING"
    assert queue.status("aaa").error_message is None
    assert queue.backend_status("fermions").pending_jobs == 1
    queue.finish("bbb", {"results": []})
    assert (root / "jobs/finished/fermions/bbb.json").is_file()
    assert queue.result("bbb") == {"results": []}
    claim = queue.claim_next("fermions")
    assert (claim.job_id, claim.payload) == ("aaa", {"experiment_0": {"shots": 3}})
