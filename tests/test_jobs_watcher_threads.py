"""JobWatcher never holds a lock across a notifier: stop() and delete_job() do not wait for one.

Each test blocks a notifier on an event and checks, against a deadline, that
another thread's call returns while it is blocked; with a watcher that held one
lock across delivery these calls would hang until the notifier returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import helpers

from qdataset.jobs import JobEvent, JobWatcher

DEADLINE = 5.0  # seconds; the calls under test need milliseconds


class FakeJob:
    def __init__(self, job_id: str, status: str = "QUEUED") -> None:
        self._id, self.state = job_id, status

    def job_id(self) -> str:
        return self._id

    def status(self) -> str:
        return self.state


class BlockingNotifier:
    """Records events; blocks inside notify() until ``release`` is set."""

    name = "blocking"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.events: list[JobEvent] = []

    def notify(self, event: JobEvent) -> None:
        self.events.append(event)
        self.entered.set()
        if not self.release.wait(30):
            raise TimeoutError("the test never released the notifier")


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    def __call__(self, event: JobEvent) -> None:
        self.events.append(event)


def in_thread(function: Callable[[], Any]) -> tuple[threading.Event, list[BaseException]]:
    """Run ``function`` in a daemon thread; the event is set when it returned or raised."""
    finished = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            finished.set()

    threading.Thread(target=target, daemon=True).start()
    return finished, errors


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    return helpers.wait_until(condition, timeout)


def delivered(watcher: JobWatcher, job_id: str) -> bool:
    rows = watcher.notifications(job_id)
    return len(rows) == 1 and rows[0]["delivered_at"] is not None


def test_delete_and_register_do_not_wait_for_a_blocked_notifier(store):
    notifier = BlockingNotifier()
    watcher = JobWatcher(store, [notifier], poll_interval=0.02)
    watcher.register_job([FakeJob("a", "DONE"), FakeJob("b")])
    watcher.start()
    try:
        assert notifier.entered.wait(DEADLINE), "the watcher never notified"

        def calls() -> None:
            watcher.delete_job("b")
            watcher.register_job(FakeJob("c"))
            watcher.job_info("c")
            watcher.pending()

        finished, errors = in_thread(calls)
        assert finished.wait(DEADLINE), "delete_job/register_job waited for the notifier"
        assert not errors, errors
        assert [info["job_id"] for info in watcher.job_info()] == ["a", "c"]
    finally:
        notifier.release.set()
    assert wait_until(lambda: delivered(watcher, "a"))
    watcher.stop()
    assert [e.job_id for e in notifier.events] == ["a"]


def test_stop_returns_while_a_notifier_blocks_and_nothing_is_sent_twice(store):
    notifier = BlockingNotifier()
    watcher = JobWatcher(store, [notifier], poll_interval=0.02)
    watcher.register_job([FakeJob("a", "DONE"), FakeJob("b", "DONE")])
    watcher.start()
    try:
        assert notifier.entered.wait(DEADLINE), "the watcher never notified"
        finished, errors = in_thread(lambda: watcher.stop(timeout=0.2))
        assert finished.wait(DEADLINE), "stop() waited for the notifier"
        assert not errors, errors
        assert not watcher.running

        # "a" is being sent: it stays claimed by the stopped watcher, so a second
        # watcher does not send it again.  "b" had not started: it was handed over
        # at once and the second watcher sends it.
        (row_a,) = watcher.notifications("a")
        assert row_a["claimed_by"] == watcher.token and row_a["delivered_at"] is None
        second = Recorder()
        successor = JobWatcher(store, [second])
        successor.poll_once()
        assert [(e.job_id, e.status) for e in second.events] == [("b", "DONE")]
        assert [e.job_id for e in notifier.events] == ["a"]  # it started nothing else
    finally:
        notifier.release.set()
    # The call in flight completes in the background and is recorded as delivered.
    assert wait_until(lambda: delivered(watcher, "a"))
    successor.poll_once()
    assert [e.job_id for e in second.events] == ["b"]
    assert [e.job_id for e in notifier.events] == ["a"]
    assert all(row["delivered_at"] is not None for row in watcher.notifications())


def test_slow_job_status_does_not_block_registration(store):
    """A remote status() call that hangs does not hold the watcher's lock either."""
    entered, release = threading.Event(), threading.Event()

    class SlowJob(FakeJob):
        def status(self) -> str:
            entered.set()
            release.wait(30)
            return "DONE"

    rec = Recorder()
    watcher = JobWatcher(store, [rec], poll_interval=0.02)
    watcher.register_job(SlowJob("slow"))
    watcher.start()
    try:
        assert entered.wait(DEADLINE)
        finished, errors = in_thread(lambda: (watcher.register_job(FakeJob("x")),
                                              watcher.delete_job("x")))
        assert finished.wait(DEADLINE), "registration waited for a job's status()"
        assert not errors, errors
    finally:
        release.set()
    assert wait_until(lambda: delivered(watcher, "slow"))
    watcher.stop()
    assert [(e.job_id, e.status) for e in rec.events] == [("slow", "DONE")]
