"""ExperimentData's composed parts: threads, chaining, locks, closing, error types.

Every wait here is on an event with a deadline that only guards against a
hang; each test would fail (by its deadline) with the design it guards
against: process-wide pools whose queued callbacks sit in ``futures.wait``,
or an experiment lock held while a job is asked or a row is written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from qdataset import QDatasetError
from qdataset.experiment import (
    AnalysisResult,
    AnalysisStatus,
    ExperimentData,
    ExperimentStatus,
    JobStatus,
)
from qdataset.experiment.errors import (
    ExperimentClosedError,
    InvalidAnalysisResultError,
    InvalidIndexError,
    UnsupportedResultError,
)

DEADLINE = 10.0  # seconds; only reached when the behaviour under test is broken


class Counts:
    """Just enough of qiskit's Result: one circuit's counts."""

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts
        self.success = True
        self.results = [type("R", (), {"shots": sum(counts.values()), "success": True})()]

    def data(self, i: int) -> dict:
        return {"counts": dict(self._counts)}

    def get_counts(self, i: int) -> dict[str, int]:
        return dict(self._counts)


class GatedJob:
    """A job that finishes when ``release`` is set; ``status()`` can be made to block."""

    def __init__(self, job_id: str, error: str | None = None) -> None:
        self._id = job_id
        self._error = error
        self.release = threading.Event()
        self.block_status = threading.Event()  # set: status() waits for status_gate
        self.in_status = threading.Event()
        self.status_gate = threading.Event()

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        if self.block_status.is_set():
            self.in_status.set()
            self.status_gate.wait(DEADLINE)
        return "DONE" if self.release.is_set() else "RUNNING"

    def result(self) -> Counts:
        self.release.wait()
        if self._error:
            raise RuntimeError(self._error)
        return Counts({"0": 1})


@pytest.fixture
def gated():
    made: list[GatedJob] = []

    def make(job_id: str, error: str | None = None) -> GatedJob:
        job = GatedJob(job_id, error)
        made.append(job)
        return job

    yield make
    for job in made:  # never leave a worker thread blocked
        job.status_gate.set()
        job.release.set()


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith(("qdataset-job", "qdataset-analysis"))]


def finishes(action: Callable[[], object], timeout: float = DEADLINE) -> bool:
    """True if ``action()`` returns within ``timeout`` s (run on its own thread)."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(timeout)
    if failure:
        raise failure[0]
    return finished


def test_slow_experiments_do_not_hold_analysis_threads(store, gated):
    """More experiments waiting on slow jobs than the old shared pool had threads (8)."""
    slow = []
    for i in range(12):
        exp = ExperimentData(store=store, experiment_type=f"slow-{i}")
        exp.add_jobs(gated(f"slow-{i}"))
        exp.add_analysis_callback(lambda e: None)
        slow.append(exp)
    # Queued callbacks wait on futures, not in threads.
    assert not [t for t in worker_threads() if t.name.startswith("qdataset-analysis")]

    ran = threading.Event()
    fast = ExperimentData(store=store, experiment_type="fast")
    fast.add_data({"counts": {"0": 1}})
    fast.add_analysis_callback(lambda e: ran.set())
    assert ran.wait(DEADLINE), "analysis of a fast experiment waited for slow ones"
    fast.block_for_results(timeout=DEADLINE)
    assert fast.status() is ExperimentStatus.DONE
    assert all(exp.analysis_status() is AnalysisStatus.QUEUED for exp in slow)
    for exp in slow:
        exp.jobs()[0].release.set()
    for exp in slow:
        assert exp.block_for_results(timeout=DEADLINE).status() is ExperimentStatus.DONE


def test_callback_runs_when_its_last_job_finishes_and_is_cancelled_early(store, gated):
    exp = ExperimentData(store=store)
    first, second = gated("first"), gated("second")
    exp.add_jobs([first, second])
    ran = threading.Event()
    exp.add_analysis_callback(lambda e: ran.set())
    first.release.set()
    assert not ran.wait(0.05)  # cheap check; the real one is below
    second.release.set()
    assert ran.wait(DEADLINE)

    failing = ExperimentData(store=store)
    bad, stuck = gated("bad", error="broken"), gated("stuck")
    failing.add_jobs([bad, stuck])
    failing.add_analysis_callback(lambda e: None)
    bad.release.set()
    # Cancelled as soon as one dependency failed, while the other still runs.
    deadline = time.monotonic() + DEADLINE
    while failing.analysis_status() is not AnalysisStatus.CANCELLED:
        assert time.monotonic() < deadline, "callback not cancelled after its job failed"
        time.sleep(0.005)
    assert "did not succeed" in failing.analysis_callbacks()[0]["error_message"]
    assert failing.job_status() is JobStatus.ERROR


def test_no_lock_is_held_while_a_job_is_asked_its_status(store, gated):
    exp = ExperimentData(store=store)
    job = gated("remote")
    exp.add_jobs(job)
    job.block_status.set()  # from now on status() hangs like a slow remote call
    asking = threading.Thread(target=exp.status, daemon=True)
    asking.start()
    assert job.in_status.wait(DEADLINE)

    def other_calls() -> None:
        exp.tags = ["while-asking"]
        exp.notes = "still responsive"
        exp.add_analysis_results(AnalysisResult("r", 1))
        exp.add_figures(b"<svg></svg>", figure_names="f")
        exp.add_data({"counts": {"1": 2}})
        assert exp.analysis_results("r", block=False).value == 1
        assert exp.job_ids == ["remote"] and exp.figure_names == ["f"]
        assert exp.status_history

    assert finishes(other_calls), "a lock was held across job.status()"
    job.status_gate.set()
    asking.join(DEADLINE)
    job.block_status.clear()
    job.release.set()
    exp.block_for_results(timeout=DEADLINE)
    assert exp.status() is ExperimentStatus.DONE and len(exp.data()) == 2


def test_no_lock_is_held_while_rows_are_written(store, gated, monkeypatch):
    exp = ExperimentData(store=store)
    writing, go_on = threading.Event(), threading.Event()
    write = exp.dataset.add_results

    def slow_write(rows):
        writing.set()
        go_on.wait(DEADLINE)
        return write(rows)

    monkeypatch.setattr(exp.dataset, "add_results", slow_write)
    job = gated("j")
    exp.add_jobs(job)
    job.release.set()  # its collector thread now writes the rows, slowly
    assert writing.wait(DEADLINE)

    def other_calls() -> None:
        exp.tags = ["during-write"]
        exp.add_analysis_results(AnalysisResult("r", 2))
        assert exp.job_ids == ["j"]
        exp.status()

    assert finishes(other_calls), "a lock was held across a database write"
    go_on.set()
    exp.block_for_results(timeout=DEADLINE)
    assert exp.job_status() is JobStatus.DONE and exp.data(0)["counts"] == {"0": 1}


def test_context_manager_waits_then_refuses_new_work(store, gated):
    job = gated("j")
    ran = []
    with ExperimentData(store=store) as exp:
        exp.add_jobs(job)
        exp.add_analysis_callback(lambda e: ran.append(len(e.data())))
        job.release.set()
    assert exp.closed and ran == [1]
    assert exp.status() is ExperimentStatus.DONE
    with pytest.raises(ExperimentClosedError, match="closed"):
        exp.add_jobs(gated("late"))
    with pytest.raises(ExperimentClosedError):
        exp.add_analysis_callback(lambda e: None)
    exp.add_data({"counts": {"1": 1}})  # data, results and save keep working
    exp.save()
    assert len(ExperimentData.load(exp.experiment_id, store).data()) == 2


def test_close_without_waiting_cancels_queued_analysis_but_collects_jobs(store, gated):
    exp = ExperimentData(store=store)
    job = gated("j")
    exp.add_jobs(job)
    exp.add_analysis_callback(lambda e: None)
    exp.close(wait=False)
    (callback,) = exp.analysis_callbacks()
    assert callback["status"] == "CANCELLED" and "closed" in callback["error_message"]
    job.release.set()
    exp.block_for_results(timeout=DEADLINE)
    assert exp.job_status() is JobStatus.DONE and len(exp.data()) == 1


def test_experiments_leave_no_threads_behind(store, gated):
    for i in range(10):
        exp = ExperimentData(store=store)  # never closed
        job = gated(f"j{i}")
        exp.add_jobs(job)
        exp.add_analysis_callback(lambda e: None)
        job.release.set()
        exp.block_for_results(timeout=DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while worker_threads():
        assert time.monotonic() < deadline, f"threads left: {worker_threads()}"
        time.sleep(0.005)


def test_public_methods_raise_qdataset_errors(store):
    exp = ExperimentData(store=store)
    cases = [
        (lambda: exp.data(1.5), InvalidIndexError, TypeError),
        (lambda: exp.child_data(1.5), InvalidIndexError, TypeError),
        (lambda: exp.analysis_results(1.5), InvalidIndexError, TypeError),
        (lambda: exp.add_child_data(object()), UnsupportedResultError, TypeError),
        (lambda: exp.add_analysis_results([object()]), UnsupportedResultError, TypeError),
        (lambda: exp.add_data({"x": object()}), UnsupportedResultError, TypeError),
        (lambda: exp.add_data({"x": {(1, 2): 3}}), UnsupportedResultError, TypeError),
        (lambda: AnalysisResult(""), InvalidAnalysisResultError, ValueError),
    ]
    for call, specific, builtin in cases:
        with pytest.raises(specific) as caught:
            call()
        assert isinstance(caught.value, QDatasetError) and isinstance(caught.value, builtin)
