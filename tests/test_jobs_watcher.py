"""JobWatcher: registration, job info, exactly-once notifications, restarts, failures."""

from __future__ import annotations

import json
import threading
import time

import pytest

import qdataset
from qdataset.jobs import JobEvent, JobNotFoundError, JobWatcher, RegistrationError


class FakeJob:
    """A job whose status the test sets."""

    def __init__(self, job_id: str, status: str = "QUEUED") -> None:
        self._id = job_id
        self.state = status
        self.polls = 0

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        self.polls += 1
        if self.state == "BROKEN":
            raise RuntimeError("provider unreachable")
        return self.state


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: JobEvent) -> None:
        with self.lock:
            self.events.append(event)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(e.job_id, e.status) for e in self.events]


def test_register_nested_and_default_done(store):
    rec = Recorder()
    watcher = JobWatcher(store, [rec])
    a, b, c = FakeJob("a"), FakeJob("b"), FakeJob("c")
    ids = watcher.register_job([[a, b], [c]])
    assert ids == [["a", "b"], ["c"]]
    assert [i["notify_status"] for i in watcher.job_info()] == [["DONE"]] * 3
    watcher.poll_once()
    a.state = "RUNNING"
    watcher.poll_once()
    assert rec.events == []  # only DONE is watched by default
    a.state = b.state = "DONE"
    events = watcher.poll_once()
    assert sorted(rec.pairs) == [("a", "DONE"), ("b", "DONE")]
    assert {e.job_id for e in events} == {"a", "b"}
    first = next(e for e in rec.events if e.job_id == "a")
    assert first.previous == "RUNNING" and abs(first.time - time.time()) < 60
    watcher.poll_once()
    assert len(rec.events) == 2


def test_notify_status_same_nesting(store):
    rec = Recorder()
    watcher = JobWatcher(store, [rec])
    j1, j2, j3 = FakeJob("j1"), FakeJob("j2"), FakeJob("j3")
    watcher.register_job([[j1, j2], [j3]],
                         notify_status=[[["DONE"], ["DONE", "ERROR"]], [["RUNNING"]]])
    info = watcher.job_info([["j1", "j2"], ["j3"]])
    assert info[0][1]["notify_status"] == ["DONE", "ERROR"]
    assert info[1][0]["notify_status"] == ["RUNNING"]
    j2.state, j3.state, j1.state = "ERROR", "RUNNING", "ERROR"
    watcher.poll_once()
    assert sorted(rec.pairs) == [("j2", "ERROR"), ("j3", "RUNNING")]


def test_registration_errors(store):
    watcher = JobWatcher(store)
    with pytest.raises(RegistrationError, match="same nesting"):
        watcher.register_job([FakeJob("a"), FakeJob("b")], notify_status=[["DONE"]])
    with pytest.raises(RegistrationError, match="not a job status"):
        watcher.register_job(FakeJob("a"), notify_status=["OVER"])  # FINISHED is an alias
    with pytest.raises(RegistrationError, match="not a job"):
        watcher.register_job(object())
    with pytest.raises(JobNotFoundError, match="register_job"):
        watcher.job_info("nope")
    assert isinstance(RegistrationError("x"), qdataset.QDatasetError)


def test_start_and_done_implies_running(store):
    rec = Recorder()
    watcher = JobWatcher(store, [rec])
    jobs = [FakeJob("first"), FakeJob("mid"), FakeJob("last")]
    assert watcher.register_start_and_done(jobs) == ["first", "last"]
    assert watcher.job_info("first")["notify_status"] == ["RUNNING"]
    assert watcher.job_info("last")["notify_status"] == ["DONE"]
    with pytest.raises(JobNotFoundError):
        watcher.job_info("mid")
    # A fast job: never seen RUNNING, but DONE means it ran.
    jobs[0].state = "DONE"
    jobs[2].state = "DONE"
    watcher.poll_once()
    assert sorted(rec.pairs) == [("first", "RUNNING"), ("last", "DONE")]
    single = FakeJob("single", "DONE")
    watcher.register_start_and_done(single)
    watcher.poll_once()
    assert [p for p in rec.pairs if p[0] == "single"] == [("single", "RUNNING"),
                                                            ("single", "DONE")]


def test_update_and_delete(store):
    rec = Recorder()
    watcher = JobWatcher(store, [rec])
    a, b = FakeJob("a"), FakeJob("b")
    watcher.register_job([a, b])
    watcher.update_job_info([{"job_id": "a", "notify_status": ["DONE", "CANCELED"]},
                             {"job_id": "b", "label": "calibration"}])
    assert watcher.job_info("a")["notify_status"] == ["DONE", "CANCELLED"]
    assert watcher.job_info("b")["label"] == "calibration"
    with pytest.raises(RegistrationError, match="only 'notify_status' and 'label'"):
        watcher.update_job_info({"job_id": "a", "status": "DONE"})
    with pytest.raises(JobNotFoundError):
        watcher.update_job_info({"job_id": "zz", "label": "x"})
    a.state = "CANCELLED"
    b.state = "DONE"
    watcher.poll_once()
    assert sorted(rec.pairs) == [("a", "CANCELLED"), ("b", "DONE")]
    assert rec.events[-1].label in ("calibration", None)
    assert watcher.delete_job([["a"]]) == 1
    assert [i["job_id"] for i in watcher.job_info()] == ["b"]
    with pytest.raises(JobNotFoundError):
        watcher.delete_job(["a"])
    assert watcher.delete_all_jobs() == 1
    assert watcher.job_info() == []


def test_exactly_once_across_restart(store_url):
    rec = Recorder()
    job = FakeJob("persist", "RUNNING")
    first_store = qdataset.connect(store_url)
    first = JobWatcher(first_store, [rec], poll_interval=0.02)
    first.register_job(job, notify_status=["RUNNING", "DONE"])
    first.poll_once()
    job.state = "DONE"
    first.poll_once()
    first.stop()
    first_store.close()
    assert rec.pairs == [("persist", "RUNNING"), ("persist", "DONE")]

    # A new process would open the store again and register the same job again.
    second_store = qdataset.connect(store_url)
    try:
        second = JobWatcher(second_store, [rec], poll_interval=0.02)
        second.register_job(job, notify_status=["RUNNING", "DONE"])
        second.poll_once()  # sees DONE again: nothing may be resent
        with second:  # and the thread's polls (its last one runs inside stop())
            pass
        assert rec.pairs == [("persist", "RUNNING"), ("persist", "DONE")]
        assert second.job_info("persist")["notified"] == ["RUNNING", "DONE"]
        # Without the live job object the record is still there, and nothing is resent.
        third = JobWatcher(second_store, [rec])
        third.poll_once()
        assert len(rec.events) == 2
    finally:
        second_store.close()


def test_two_watchers_at_once_notify_once(store):
    rec = Recorder()
    jobs = [FakeJob(f"j{i}") for i in range(20)]
    watchers = [JobWatcher(store, [rec], poll_interval=0.01) for _ in range(3)]
    for w in watchers:
        w.register_job(jobs)
        w.start()
    try:
        for job in jobs:
            job.state = "DONE"
        deadline = time.time() + 10
        while len(rec.events) < 20 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        for w in watchers:
            w.stop()  # joins the thread after its last poll: nothing can arrive later
    assert sorted(rec.pairs) == sorted((f"j{i}", "DONE") for i in range(20))


def test_failing_notifier_is_retried_and_never_stops_the_watcher(store, caplog):
    calls = {"flaky": 0, "broken": 0}
    good = Recorder()

    def flaky(event):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("temporarily down")

    def broken(event):
        calls["broken"] += 1
        raise RuntimeError("always down")

    watcher = JobWatcher(store, [flaky, broken, good], poll_interval=0.01,
                         retries=2, backoff=0.01)
    bad_status = FakeJob("unreachable", "BROKEN")
    job = FakeJob("x", "DONE")
    watcher.register_job([bad_status, job])
    with watcher:
        deadline = time.time() + 5
        while (watcher.pending() or calls["broken"] < 3) and time.time() < deadline:
            time.sleep(0.02)
        assert watcher.running
    assert calls == {"flaky": 3, "broken": 3}  # first try + 2 retries
    assert good.pairs == [("x", "DONE")]  # delivered once, not once per retry
    [note] = watcher.notifications("x")
    assert note["delivered_at"] is not None and "always down" in note["error"]
    assert "gave up" in caplog.text and "cannot get the status" in caplog.text


def test_undelivered_notification_taken_over_after_crash(store):
    rec = Recorder()
    job = FakeJob("crash", "DONE")

    def down(event):
        raise ConnectionError("down")

    crashed = JobWatcher(store, [down], retries=100, backoff=100)
    crashed.register_job(job)
    crashed.poll_once()  # created the notification, could not deliver; then "crashes"
    assert crashed.pending() == 1
    survivor = JobWatcher(store, [rec], lease=0.0)
    survivor.poll_once()
    assert rec.pairs == [("crash", "DONE")]
    survivor.poll_once()
    assert len(rec.events) == 1


def test_real_aer_jobs_in_background(store):
    pytest.importorskip("qiskit_aer")
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    sim = AerSimulator(seed_simulator=3)
    rec = Recorder()
    with JobWatcher(store, [rec], poll_interval=0.02) as watcher:
        jobs = [sim.run(qc, shots=200) for _ in range(3)]
        ids = watcher.register_job([jobs[:2], [jobs[2]]],
                                   notify_status=[[["DONE"], ["RUNNING", "DONE"]], [["DONE"]]])
        for job in jobs:
            job.result()
        deadline = time.time() + 10
        while len(rec.events) < 4 and time.time() < deadline:
            time.sleep(0.02)
    assert ids[1][0] == jobs[2].job_id()
    assert sorted(rec.pairs) == sorted([(jobs[0].job_id(), "DONE"),
                                        (jobs[1].job_id(), "RUNNING"),
                                        (jobs[1].job_id(), "DONE"),
                                        (jobs[2].job_id(), "DONE")])
    assert watcher.job_info(jobs[0].job_id())["backend"] == "aer_simulator"


_WATCH_SCRIPT = """
import json, sys
import qdataset
from qdataset.jobs import JobWatcher
url, job_id, out = sys.argv[1:4]
with qdataset.connect(url) as store:
    def record(event):
        with open(out, "a") as f:
            f.write(json.dumps([event.job_id, event.status]) + "\\n")
    watcher = JobWatcher(store, [record])
    watcher.register_job(job_id, notify_status=["RUNNING", "DONE"])  # by id: a queued job
    watcher.poll_once()
    watcher.stop()
"""


@pytest.mark.slow  # starts several Python processes
def test_exactly_once_across_watcher_processes(store, store_url, tmp_path):
    """Each run of the script is a fresh watching process; queued jobs need no live object."""
    import subprocess
    import sys

    from qdataset.jobs import JobQueue

    queue = JobQueue(store)
    queue.upload_config("aer", {})
    job_id = queue.submit("aer", {"x": 1})
    out = tmp_path / "events.jsonl"

    def watch_in_new_process():
        subprocess.run([sys.executable, "-c", _WATCH_SCRIPT, store_url, job_id, str(out)],
                       check=True, timeout=60)
        return [tuple(json.loads(line)) for line in out.read_text().splitlines()] \
            if out.exists() else []

    assert watch_in_new_process() == []  # QUEUED is not watched
    queue.claim_next("aer")
    assert watch_in_new_process() == [(job_id, "RUNNING")]
    queue.finish(job_id, {"ok": True})
    assert watch_in_new_process() == [(job_id, "RUNNING"), (job_id, "DONE")]
    assert watch_in_new_process() == [(job_id, "RUNNING"), (job_id, "DONE")]
