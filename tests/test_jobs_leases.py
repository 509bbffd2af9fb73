"""Queue leases (issue 13, item 9): claims that run out, dead workers, exactly-once finish.

Both providers: JobQueue on SQLite and PostgreSQL, and FolderQueue.  Waits are
on events and deadlines; a claim's holder is rewritten only to stand for a
worker on another host or a process that is gone (``set_holder``).
"""

from __future__ import annotations

import json
import os
import queue as queues
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import qdataset
from qdataset.jobs import (
    FolderQueue,
    InvalidTransitionError,
    JobConfigError,
    JobQueue,
    LeaseLostError,
    NotHolderError,
    Worker,
)


@pytest.fixture(params=["db", "folder"])
def make_queue(request, store_url, tmp_path):
    """A factory of queue objects on one queue: JobQueue on both engines, FolderQueue once."""
    if request.param == "folder" and store_url.startswith("postgresql"):
        pytest.skip("FolderQueue keeps nothing in a database: run once")
    opened = []

    def factory(**options):
        if request.param == "folder":
            return FolderQueue(tmp_path / "q", **options)
        store = qdataset.connect(store_url)
        opened.append(store)
        return JobQueue(store, **options)

    factory.kind = request.param
    factory.where = str(tmp_path / "q") if request.param == "folder" else store_url
    yield factory
    for store in opened:
        store.close()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def set_holder(queue, job_id: str, host: str, pid: int) -> None:
    """Make the current claim on ``job_id`` look held by ``host``:``pid``."""
    if isinstance(queue, FolderQueue):
        path = queue.root / "leases" / f"{job_id}.json"
        lease = json.loads(path.read_text())
        path.write_text(json.dumps({**lease, "host": host, "pid": pid}))
        return
    with queue.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE job_queue SET holder_host = :h, holder_pid = :p "
                             "WHERE job_id = :j"), {"h": host, "p": pid, "j": job_id})


def wait_for(predicate, timeout: float = 15.0):
    """Poll ``predicate`` until it returns something truthy; that value (None at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return None


def test_a_claim_is_a_lease(make_queue):
    queue = make_queue(lease_timeout=30)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    before = time.time()
    claim = queue.claim_next("aer", worker="w1")
    assert (claim.job_id, claim.attempts, claim.lease_timeout) == (job_id, 1, 30.0)
    assert len(claim.token) == 32
    assert before + 30 <= claim.lease_expires_at <= time.time() + 30
    assert queue.renew(claim) >= claim.lease_expires_at
    assert queue.attempts(job_id) == 1
    assert make_queue(lease_timeout=30).claim_next("aer") is None  # held: not requeued
    queue.finish(job_id, {"r": 1})
    assert queue.status(job_id).status == "DONE" and queue.attempts(job_id) == 1
    with pytest.raises(LeaseLostError, match="lease was lost"):
        queue.renew(claim)  # nothing left to renew


def test_lease_timeout_comes_from_the_store_and_is_checked(store, tmp_path):
    assert JobQueue(store).lease_timeout == getattr(store, "lease_timeout", 10.0)
    assert JobQueue(store, lease_timeout=2.5).lease_timeout == 2.5
    assert FolderQueue(tmp_path / "q").lease_timeout == 10.0
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(JobConfigError, match="lease_timeout"):
            JobQueue(store, lease_timeout=bad)
    with pytest.raises(JobConfigError, match="max_attempts"):
        FolderQueue(tmp_path / "q", max_attempts=0)


def test_stalled_holder_loses_its_claim_after_the_lease_timeout(make_queue):
    """A live holder that stops renewing: requeued once its lease ran out, not before;
    its late result is rejected and the job is finished once, by the new holder."""
    stalled = make_queue(lease_timeout=0.5)
    stalled.upload_config("aer", {})
    job_id = stalled.submit("aer", {"x": 1})
    first = stalled.claim_next("aer")
    other = make_queue(lease_timeout=0.5)
    assert other.claim_next("aer") is None  # this process is alive and the lease holds
    second = wait_for(lambda: other.claim_next("aer"))
    assert second is not None and second.job_id == job_id
    assert time.time() >= first.lease_expires_at  # not before the lease ran out
    assert (second.attempts, other.attempts(job_id)) == (2, 2)
    with pytest.raises(LeaseLostError, match="requeued"):
        stalled.finish(job_id, {"by": "stalled"})
    with pytest.raises(LeaseLostError):
        stalled.fail(job_id, "late failure")
    with pytest.raises(LeaseLostError):
        stalled.renew(first)
    other.finish(job_id, {"by": "other"})
    assert other.result(job_id) == {"by": "other"}
    with pytest.raises(LeaseLostError):  # also after the job is DONE
        stalled.finish(job_id, {"by": "stalled"})
    assert other.result(job_id) == {"by": "other"} and other.attempts(job_id) == 2


def test_holder_on_another_host_keeps_its_claim_until_the_lease_runs_out(make_queue):
    """A pid is checked only on its own host: elsewhere only the lease counts."""
    queue = make_queue(lease_timeout=0.5)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    claim = queue.claim_next("aer")
    set_holder(queue, job_id, "another-host.example.org", dead_pid())
    other = make_queue(lease_timeout=0.5)
    assert other.claim_next("aer") is None
    taken = wait_for(lambda: other.claim_next("aer"))
    assert taken.job_id == job_id and time.time() >= claim.lease_expires_at
    assert taken.attempts == 2


def test_dead_holder_on_this_host_frees_the_job_at_once(make_queue):
    import socket

    queue = make_queue(lease_timeout=600)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    claim = queue.claim_next("aer")
    set_holder(queue, job_id, socket.gethostname(), dead_pid())
    other = make_queue(lease_timeout=600)
    again = other.claim_next("aer")  # long before the lease would run out
    assert again.job_id == job_id and again.attempts == 2
    assert time.time() < claim.lease_expires_at
    assert "is gone" in other.status(job_id).detail or other.status(job_id).status == "RUNNING"
    other.finish(job_id, {"ok": True})
    assert other.status(job_id).status == "DONE"


def test_requeue_lost_without_claiming(make_queue):
    import socket

    queue = make_queue(lease_timeout=600)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    queue.claim_next("aer")
    assert queue.requeue_lost("aer") == []
    set_holder(queue, job_id, socket.gethostname(), dead_pid())
    assert make_queue().requeue_lost("aer") == [job_id]
    state = queue.status(job_id)
    assert state.status == "QUEUED" and "is gone" in state.detail


def test_a_job_lost_max_attempts_times_ends_as_error(make_queue):
    import socket

    queue = make_queue(lease_timeout=600, max_attempts=2)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    later = queue.submit("aer", {"x": 2})
    for attempt in (1, 2):
        claim = queue.claim_next("aer")
        assert (claim.job_id, claim.attempts) == (job_id, attempt)
        set_holder(queue, job_id, socket.gethostname(), dead_pid())
    claim = queue.claim_next("aer")  # ends job_id, then claims the next job
    assert claim.job_id == later
    state = queue.status(job_id)
    assert state.status == "ERROR"
    assert "worker lost 2 times" in state.error_message
    assert "tried at most 2 times" in state.error_message
    with pytest.raises(qdataset.QDatasetError, match="worker lost 2 times"):
        queue.result(job_id)


def test_only_the_holder_finishes(make_queue):
    queue = make_queue()
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    claim = queue.claim_next("aer")
    stranger = make_queue()
    with pytest.raises(NotHolderError, match="token=claim.token") as info:
        stranger.finish(job_id, {"r": 0})
    assert isinstance(info.value, InvalidTransitionError)
    with pytest.raises(NotHolderError):
        stranger.fail(job_id, "not mine")
    with pytest.raises(LeaseLostError):
        stranger.finish(job_id, {"r": 0}, token="0" * 32)
    stranger.finish(job_id, {"r": 1}, token=claim.token)  # a worker passing its token
    assert queue.result(job_id) == {"r": 1}
    with pytest.raises(InvalidTransitionError, match="is DONE"):
        queue.finish(job_id, {"r": 2})
    queued = queue.submit("aer", {"x": 2})
    stranger.fail(queued, "rejected before running")  # no claim: anyone may fail it
    assert queue.status(queued).status == "ERROR"


class BlockingWorker(Worker):
    """Runs no simulator: ``execute`` waits for ``release`` and returns who ran it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = threading.Event()
        self.release = threading.Event()
        self.executed = []

    def execute(self, claim):
        self.executed.append(claim.job_id)
        self.started.set()
        assert self.release.wait(30)
        return {"by": self.name, "attempt": claim.attempts}


def test_worker_renews_its_lease_while_it_runs(make_queue):
    # Renewals come every lease_timeout / 3; 1.5 s leaves a loaded CI machine 1 s of
    # slack per renewal (0.3 s, the first choice, failed once there under load).
    lease = 1.5
    queue = make_queue(lease_timeout=lease)
    queue.upload_config("aer", {"max_shots": 10})
    job_id = queue.submit("aer", {"x": 1})
    worker = BlockingWorker(queue, "aer")
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    try:
        assert worker.started.wait(15)
        other = make_queue(lease_timeout=lease)
        deadline = time.monotonic() + 3 * lease  # three lease timeouts
        while time.monotonic() < deadline:
            assert other.claim_next("aer") is None  # renewed: never requeued
            time.sleep(0.02)
    finally:
        worker.release.set()
        thread.join(15)
    assert queue.status(job_id).status == "DONE" and queue.attempts(job_id) == 1
    assert (worker.done, worker.lost, worker.failed) == (1, 0, 0)


def test_worker_whose_renewal_stalls_loses_the_job_to_another(make_queue):
    queue = make_queue(lease_timeout=0.3)
    queue.upload_config("aer", {"max_shots": 10})
    job_id = queue.submit("aer", {"x": 1})
    stalled = BlockingWorker(queue, "aer", name="stalled")
    stalled.renew_interval = 3600  # renewal paused
    thread = threading.Thread(target=stalled.run_once)
    thread.start()
    try:
        assert stalled.started.wait(15)
        rescuer = BlockingWorker(make_queue(lease_timeout=0.3), "aer", name="rescuer")
        rescuer.release.set()
        assert wait_for(lambda: rescuer.run_once()) == job_id
    finally:
        stalled.release.set()
        thread.join(15)
    assert (stalled.done, stalled.lost, stalled.failed) == (0, 1, 0)
    assert (rescuer.done, rescuer.lost) == (1, 0)
    assert queue.result(job_id) == {"by": "rescuer", "attempt": 2}
    assert queue.status(job_id).status == "DONE"


# -- real worker processes: SIGKILL and SIGSTOP ------------------------------------------

_CHILD_WORKER = textwrap.dedent("""
    import json, os, sys, threading
    from pathlib import Path

    import qdataset
    from qdataset.jobs import FolderQueue, JobQueue, Worker

    kind, where, lease, release = sys.argv[1:5]

    class Blocking(Worker):
        def execute(self, claim):
            print("CLAIMED", claim.job_id, claim.attempts, flush=True)
            while not Path(release).exists():  # the kill test never releases it
                threading.Event().wait(0.01)
            return {"by": "child", "pid": os.getpid()}

    if kind == "db":
        queue = JobQueue(qdataset.connect(where), lease_timeout=float(lease))
    else:
        queue = FolderQueue(where, lease_timeout=float(lease))
    worker = Blocking(queue, "aer", name=f"child-{os.getpid()}")
    worker.run(max_jobs=1)
    print("COUNTS", json.dumps({"done": worker.done, "lost": worker.lost,
                                "failed": worker.failed}), flush=True)
""")


class ChildWorker:
    """A ``qdataset.jobs.Worker`` in a process of its own whose job blocks."""

    def __init__(self, make_queue, tmp_path: Path, lease_timeout: float) -> None:
        script = tmp_path / "child_worker.py"
        script.write_text(_CHILD_WORKER)
        self.release = tmp_path / f"release-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), make_queue.kind, make_queue.where,
             str(lease_timeout), str(self.release)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        self.lines: queues.Queue[str] = queues.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.split())

    def expect(self, word: str, timeout: float = 60.0) -> list[str]:
        try:
            fields = self.lines.get(timeout=timeout)
        except queues.Empty:
            self.proc.kill()
            raise AssertionError(f"the worker process said no {word}: "
                                 f"{self.proc.communicate()[1]}") from None
        assert fields[0] == word, fields
        return fields[1:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


class CountingWorker(Worker):
    """Finishes each job at once, recording what it ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.executed = []

    def execute(self, claim):
        self.executed.append((claim.job_id, claim.attempts))
        return {"by": "rescuer", "attempt": claim.attempts}


KILL_TRIALS = int(os.environ.get("QDATASET_LEASE_TRIALS", "3"))


@pytest.mark.slow  # a Python process per trial
def test_worker_killed_holding_a_job_is_requeued_and_finished_once(make_queue, tmp_path):
    """SIGKILL of a worker process while its job runs: the next claim on this host
    requeues it at once (the pid is gone; the lease would hold for a minute) and
    another worker finishes it exactly once."""
    queue = make_queue(lease_timeout=60)
    queue.upload_config("aer", {"max_shots": 10})
    rescuer = CountingWorker(make_queue(lease_timeout=60), "aer", name="rescuer")
    for trial in range(KILL_TRIALS):
        job_id = queue.submit("aer", {"trial": trial})
        child = ChildWorker(make_queue, tmp_path, lease_timeout=60)
        try:
            claimed, attempts = child.expect("CLAIMED")
            assert (claimed, attempts) == (job_id, "1")
            os.kill(child.proc.pid, signal.SIGKILL)
            assert child.proc.wait(30) == -signal.SIGKILL
        finally:
            child.close()
        assert queue.status(job_id).status == "RUNNING"  # nobody has looked yet
        started = time.monotonic()
        assert rescuer.run(once=True) == 1
        assert time.monotonic() - started < 30  # not the 60 s lease
        state = queue.status(job_id)
        assert (state.status, queue.attempts(job_id)) == ("DONE", 2), state
        assert queue.result(job_id) == {"by": "rescuer", "attempt": 2}
        assert rescuer.run(once=True) == 0  # nothing left: finished once
    assert rescuer.executed == [(i, 2) for i in queue.jobs(status="DONE")]
    assert (rescuer.done, rescuer.lost, rescuer.failed) == (KILL_TRIALS, 0, 0)
    assert len(queue.jobs(status="DONE")) == KILL_TRIALS


@pytest.mark.slow  # a Python process
def test_worker_stopped_past_its_lease_is_refused_when_it_resumes(make_queue, tmp_path):
    """SIGSTOP (a live but stalled holder): its lease runs out, another worker finishes
    the job; after SIGCONT the stalled worker's result is rejected (LeaseLostError)."""
    queue = make_queue(lease_timeout=1.0)
    queue.upload_config("aer", {"max_shots": 10})
    job_id = queue.submit("aer", {"x": 1})
    child = ChildWorker(make_queue, tmp_path, lease_timeout=1.0)
    try:
        assert child.expect("CLAIMED")[0] == job_id
        os.kill(child.proc.pid, signal.SIGSTOP)
        rescuer = CountingWorker(make_queue(lease_timeout=1.0), "aer", name="rescuer")
        assert rescuer.run_once() is None  # alive (stopped) and leased: not taken
        assert wait_for(lambda: rescuer.run_once()) == job_id  # once the lease ran out
        child.release.touch()
        os.kill(child.proc.pid, signal.SIGCONT)
        counts = json.loads(" ".join(child.expect("COUNTS")))
        assert child.proc.wait(30) == 0
    finally:
        child.close()
    assert counts == {"done": 0, "lost": 1, "failed": 0}
    assert queue.result(job_id) == {"by": "rescuer", "attempt": 2}
    assert (queue.status(job_id).status, queue.attempts(job_id)) == ("DONE", 2)


def test_worker_command_takes_lease_options(tmp_path, capsys):
    from qdataset.cli import main

    FolderQueue(tmp_path / "q").upload_config("aer", {})
    assert main(["worker", "--backend", "aer", "--folder", str(tmp_path / "q"), "--once",
                 "--lease-timeout", "5", "--max-attempts", "2", "--quiet"]) == 0
    assert "0 job(s) done" in capsys.readouterr().out
