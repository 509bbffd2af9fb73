"""Status rules, callbacks, timeouts and cancellation, with deterministic plain-Python jobs.

A FakeJob blocks in result() on a threading.Event, so every state is reached
on purpose; the tests check recorded states, never elapsed times.
"""

from __future__ import annotations

import threading
import time

import pytest

from qdataset.experiment import (
    AnalysisResult,
    AnalysisStatus,
    ExperimentData,
    ExperimentStatus,
    JobStatus,
)
from qdataset.experiment.status import experiment_status


class FakeResult:
    """Just enough of qiskit's Result for the experiment layer."""

    def __init__(self, counts: list[dict[str, int]], success: bool = True) -> None:
        self._counts = counts
        self.success = success
        self.status = "COMPLETED" if success else "ERROR: out of luck"
        self.results = [_ExpResult(sum(c.values())) for c in counts]

    def data(self, i: int) -> dict:
        return {"counts": {hex(int(k, 2)): v for k, v in self._counts[i].items()}}

    def get_counts(self, i: int) -> dict[str, int]:
        return dict(self._counts[i])


class _ExpResult:
    def __init__(self, shots: int) -> None:
        self.shots = shots
        self.meas_level = 2
        self.success = True
        self.header = {"metadata": {"fake": True}}


class FakeJob:
    """A job whose life is driven by the test: queued -> running -> done/error."""

    def __init__(self, job_id: str, counts: list[dict[str, int]] | None = None,
                 error: str | None = None, status: str = "QUEUED") -> None:
        self._id = job_id
        self._counts = counts or [{"00": 3, "11": 1}]
        self._error = error
        self._status = status
        self.release = threading.Event()

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        return self._status

    def set_status(self, status: str) -> None:
        self._status = status

    def result(self) -> FakeResult:
        self.release.wait()
        if self._status == "CANCELLED":
            raise RuntimeError("job was cancelled")
        if self._error:
            self._status = "ERROR"
            raise RuntimeError(self._error)
        self._status = "DONE"
        return FakeResult(self._counts)

    def error_message(self) -> str | None:
        return self._error

    def cancel(self) -> bool:
        if self._status in ("QUEUED", "INITIALIZING"):
            self._status = "CANCELLED"
            self.release.set()
            return True
        return False  # like Aer: a running job cannot be stopped

    def finish(self) -> None:
        self.release.set()


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Wait for a state reached on another thread (the deadline only guards hangs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("state not reached")
        time.sleep(0.002)


@pytest.fixture
def jobs():
    made: list[FakeJob] = []

    def make(*args, **kwargs) -> FakeJob:
        job = FakeJob(*args, **kwargs)
        made.append(job)
        return job

    yield make
    for job in made:  # never leave a pool thread blocked
        job.release.set()


def test_status_rules_table():
    J, A, E = JobStatus, AnalysisStatus, ExperimentStatus
    assert experiment_status(True, J.DONE, A.DONE) is E.EMPTY
    assert experiment_status(False, J.RUNNING, A.QUEUED) is E.RUNNING
    assert experiment_status(False, J.QUEUED, A.DONE) is E.QUEUED
    assert experiment_status(False, J.DONE, A.QUEUED) is E.POST_PROCESSING
    assert experiment_status(False, J.DONE, A.DONE) is E.DONE
    assert experiment_status(False, J.RUNNING, A.ERROR) is E.ERROR  # errors first
    assert experiment_status(False, J.CANCELLED, A.DONE) is E.CANCELLED
    assert experiment_status(False, J.ERROR, A.CANCELLED) is E.ERROR
    assert JobStatus.coerce("done") is J.DONE and JobStatus.coerce(J.ERROR) is J.ERROR


def test_every_status_transition_in_order(store, jobs):
    exp = ExperimentData(store=store, experiment_type="fake")
    assert exp.status() is ExperimentStatus.EMPTY
    job = jobs("job-1", status="INITIALIZING")
    exp.add_jobs(job)
    assert exp.status() is ExperimentStatus.INITIALIZING
    job.set_status("VALIDATING")
    assert exp.status() is ExperimentStatus.VALIDATING
    job.set_status("QUEUED")
    assert exp.status() is ExperimentStatus.QUEUED
    job.set_status("RUNNING")
    assert exp.status() is ExperimentStatus.RUNNING

    inside, go_on = threading.Event(), threading.Event()

    def slow_fit(e, scale):
        inside.set()
        go_on.wait()
        e.add_analysis_results(AnalysisResult("p00", e.data(0)["counts"]["00"] * scale))

    exp.add_analysis_callback(slow_fit, scale=0.25)
    assert exp.analysis_status() is AnalysisStatus.QUEUED
    assert exp.status() is ExperimentStatus.RUNNING  # jobs first
    job.finish()
    inside.wait()
    assert exp.analysis_status() is AnalysisStatus.RUNNING
    assert exp.status() is ExperimentStatus.POST_PROCESSING
    assert exp.job_status() is JobStatus.DONE
    assert exp.data(0)["counts"] == {"00": 3, "11": 1}  # data arrived before analysis
    go_on.set()
    exp.block_for_results()
    assert exp.status() is ExperimentStatus.DONE
    assert exp.analysis_results("p00").value == 0.75
    assert [s for s, _ in exp.status_history] == [
        "EMPTY", "INITIALIZING", "VALIDATING", "QUEUED", "RUNNING", "POST_PROCESSING", "DONE"]


def test_callbacks_run_in_order_after_all_jobs(store, jobs):
    exp = ExperimentData(store=store)
    first, second = jobs("a"), jobs("b")
    exp.add_jobs([first, [second]])  # nested lists are fine
    order: list[tuple[str, int]] = []
    for name in ("one", "two", "three"):
        exp.add_analysis_callback(lambda e, name=name: order.append((name, len(e.data()))))
    second.finish()
    assert order == []  # still waiting for the first job
    first.finish()
    exp.block_for_results()
    assert order == [("one", 2), ("two", 2), ("three", 2)]
    assert exp.status() is ExperimentStatus.DONE


def test_failing_callback_records_traceback_and_cancels_later_ones(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("a")
    exp.add_jobs(job)
    ran: list[str] = []

    def good(e):
        ran.append("good")

    def broken(e):
        ran.append("broken")
        raise ValueError("fit did not converge")

    def later(e):
        ran.append("later")

    exp.add_analysis_callback(good)
    broken_id = exp.add_analysis_callback(broken)
    exp.add_analysis_callback(later)
    job.finish()
    exp.block_for_results()
    assert ran == ["good", "broken"]
    assert [c["status"] for c in exp.analysis_callbacks()] == ["DONE", "ERROR", "CANCELLED"]
    assert exp.analysis_status() is AnalysisStatus.ERROR
    assert exp.status() is ExperimentStatus.ERROR
    errors = exp.errors()
    assert broken_id in errors and "Traceback" in errors and "fit did not converge" in errors
    assert "broken" in exp.analysis_callbacks()[2]["error_message"]

    # After block_for_results a new callback runs again (as in qiskit-experiments).
    exp.add_analysis_callback(later)
    exp.block_for_results()
    assert ran[-1] == "later"


def test_job_error_is_recorded_with_its_message(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("bad", error="backend exploded")
    exp.add_jobs(job)
    exp.add_analysis_callback(lambda e: None)
    job.finish()
    exp.block_for_results()
    assert exp.job_status() is JobStatus.ERROR
    assert exp.status() is ExperimentStatus.ERROR
    assert "[Job ID: bad]: backend exploded" in exp.errors()
    assert exp.analysis_status() is AnalysisStatus.CANCELLED


def test_timeout_records_running_job_as_cancelled_and_discards_late_results(store, jobs):
    exp = ExperimentData(store=store)
    done, stuck = jobs("fast"), jobs("stuck", status="RUNNING")
    done.finish()
    exp.add_jobs([done, stuck], timeout=0.05)
    exp.add_analysis_callback(lambda e: None)
    exp.block_for_results()
    records = {r["job_id"]: r for r in exp.job_records()}
    assert records["fast"]["status"] == "DONE"
    assert records["stuck"]["status"] == "CANCELLED"
    assert "add_jobs timeout" in records["stuck"]["error_message"]
    assert "could not stop it" in records["stuck"]["error_message"]
    assert exp.status() is ExperimentStatus.CANCELLED
    assert exp.analysis_status() is AnalysisStatus.CANCELLED
    stuck.finish()  # the backend finishes anyway: the record stays, the rows are dropped
    wait_until(lambda: stuck.status() == "DONE")
    exp.block_for_results()
    assert exp.job_records()[1]["status"] == "CANCELLED"
    assert [r["job_id"] for r in exp.data()] == ["fast"]


def test_cancel_jobs_analysis_and_all(store, jobs):
    exp = ExperimentData(store=store)
    queued, running = jobs("q"), jobs("r", status="RUNNING")
    exp.add_jobs([queued, running])
    cid = exp.add_analysis_callback(lambda e: None)
    assert exp.cancel_analysis(cid) is True
    assert exp.analysis_status() is AnalysisStatus.CANCELLED
    assert exp.cancel_jobs("q") is True
    assert exp.cancel() is False  # the running job cannot be stopped ...
    assert exp.job_status() is JobStatus.CANCELLED  # ... but our records say cancelled
    assert {r["job_id"]: r["status"] for r in exp.job_records()} == {
        "q": "CANCELLED", "r": "CANCELLED"}
    assert exp.status() is ExperimentStatus.CANCELLED
    assert exp.block_for_results() is exp  # nothing left to wait for


def test_running_callback_cannot_be_cancelled(store):
    exp = ExperimentData(store=store)
    inside, go_on = threading.Event(), threading.Event()
    exp.add_analysis_callback(lambda e: (inside.set(), go_on.wait()))
    inside.wait()
    assert exp.cancel_analysis() is False
    go_on.set()
    exp.block_for_results()
    assert exp.analysis_status() is AnalysisStatus.DONE


def test_callback_may_use_results_and_block_inside(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("a")
    exp.add_jobs(job)
    seen = []

    def fit(e):
        e.block_for_results()  # must not wait for itself
        e.add_analysis_results(AnalysisResult("n", len(e.data())))
        seen.append(e.analysis_results("n").value)

    exp.add_analysis_callback(fit)
    job.finish()
    exp.block_for_results()
    assert seen == [1]


def test_block_for_results_timeout_returns_with_pending_jobs(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("slow", status="RUNNING")
    exp.add_jobs(job)
    exp.block_for_results(timeout=0.01)
    assert exp.status() is ExperimentStatus.RUNNING
    job.finish()
    exp.block_for_results()
    assert exp.status() is ExperimentStatus.DONE


def test_add_data_dicts_and_results(store):
    exp = ExperimentData(store=store)
    exp.add_data({"counts": {"0": 5}, "shots": 5, "note": "by hand", "phase": 1 + 2j})
    exp.add_data([FakeResult([{"1": 2}])])
    first = exp.data(0)
    assert first == {"counts": {"0": 5}, "shots": 5, "note": "by hand", "phase": 1 + 2j}
    assert exp.data(1)["counts"] == {"1": 2}
    assert exp.status() is ExperimentStatus.DONE
    with pytest.raises(TypeError):
        exp.data(1.5)


def test_duplicate_job_is_skipped_and_non_jobs_rejected(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("a")
    job.finish()
    exp.add_jobs(job)
    exp.add_jobs(job)
    assert exp.job_ids == ["a"]
    with pytest.raises(TypeError, match="add_data"):
        exp.add_jobs(object())
    exp.block_for_results()
    assert len(exp.data()) == 1


def test_no_worker_threads_linger_after_the_work(store, jobs):
    exp = ExperimentData(store=store)
    job = jobs("a")
    exp.add_jobs(job)
    exp.add_analysis_callback(lambda e: None)
    job.finish()
    exp.block_for_results()
    wait_until(lambda: not [t for t in threading.enumerate()
                            if t.name.startswith(("qdataset-job", "qdataset-analysis"))])
