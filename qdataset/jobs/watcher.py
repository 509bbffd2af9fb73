"""JobWatcher: register jobs, poll their statuses, notify once per status entered.

Records live in the database (``watched_jobs``, ``job_notifications``).  A
notification is a row keyed by (job, status), created in the same transaction
that stores the status just seen, so each one exists at most once, ever: a
second watcher, or the same one after a restart, never sends it again.
Delivery follows the outbox pattern: the row is marked delivered once every
notifier succeeded or gave up after its retries; rows a crashed watcher left
undelivered are picked up by the next watcher after ``lease`` seconds (or at
once, after a clean :meth:`JobWatcher.stop`).

Threads and locks.  A poll (:meth:`JobWatcher.poll_once`, from the background
thread or a caller) holds ``_cycle``, so polls of one watcher never overlap;
nothing else takes it.  ``_lock`` guards the job objects and the outbox's own
lock guards the deliveries; both are held only to read or change memory,
never across a job's ``status()``, a notifier or the database.  So
:meth:`~JobWatcher.stop`, :meth:`~JobWatcher.delete_job` and registration
never wait behind a slow webhook or a remote provider.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..job_status import job_backend_name
from ..store.jobs import NotificationRow, WatchRow, WatchStorage
from ._outbox import Attempt, Key, Outbox
from ._registration import (
    entered_statuses,
    flatten,
    info_dict,
    job_id_of,
    nested_map,
    pair,
    statuses,
)
from .errors import JobConfigError, JobNotFoundError, RegistrationError
from .notifiers import JobEvent, as_notifier, notifier_name
from .records import FINAL_STATUSES, status_name

LOG = logging.getLogger("qdataset.jobs")

# job_id_of and entered_statuses were defined here; they stay importable from here.
__all__ = ["JobWatcher", "entered_statuses", "job_id_of"]


class _QueueStatus:
    """Status of a job of this store's job queue, for jobs without a live object."""

    def __init__(self, queue: Any, job_id: str) -> None:
        self._queue, self._job_id = queue, job_id

    def status(self) -> str:
        return self._queue.status(self._job_id).status


class _Run:
    """One life of the background thread: asked to stop, and maybe abandoned.

    ``abandoned`` is set when :meth:`JobWatcher.stop` gave up waiting for the
    thread (it is inside a notifier or a ``status()`` call): the thread then
    starts no further delivery and hands what it holds to the next watcher.
    Each run has its own events, so a watcher restarted meanwhile is not affected.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abandoned = threading.Event()


class JobWatcher:
    """Watch jobs and notify when they enter chosen statuses.

    >>> watcher = JobWatcher(store, notifiers=[print, WebhookNotifier(url)])
    >>> watcher.register_job([[job1, job2], [job3]],
    ...                      notify_status=[[["DONE"], ["DONE", "ERROR"]], [["RUNNING"]]])
    >>> with watcher:                    # polls in a background thread until the end
    ...     job3.result()

    ``notifiers``: functions ``f(event)`` and/or notifier objects.  ``resolver``:
    ``f(job_id) -> job or None`` for jobs registered by an earlier process;
    jobs of this store's :class:`JobQueue` are found without it.  A failed
    notifier is retried ``retries`` times, waiting ``backoff``, 2 x ``backoff``,
    ... seconds, then given up (logged and recorded in the database).
    """

    def __init__(
        self,
        store: Any,
        notifiers: Iterable[Any] = (),
        *,
        poll_interval: float = 1.0,
        retries: int = 3,
        backoff: float = 1.0,
        lease: float = 60.0,
        resolver: Callable[[str], Any] | None = None,
    ) -> None:
        if not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
            raise JobConfigError(
                f"poll_interval must be a positive number of seconds, not {poll_interval!r}"
            )
        self.store = store
        self.notifiers = [as_notifier(n) for n in notifiers]
        self.poll_interval = poll_interval
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.lease = float(lease)
        self.resolver = resolver
        self.token = uuid.uuid4().hex
        self._sql = WatchStorage(store)
        self._jobs: dict[str, Any] = {}  # job id -> live job object; guarded by _lock
        self._lock = threading.Lock()
        self._outbox = Outbox()
        self._cycle = threading.Lock()  # one poll at a time; held across I/O, see module doc
        self._run_state = _Run()
        self._thread: threading.Thread | None = None
        self._last_renew = time.time()
        self._queue: Any = None

    def __repr__(self) -> str:
        return f"<JobWatcher {self.store!r} notifiers={len(self.notifiers)}>"

    # -- registry ---------------------------------------------------------------------
    def register_job(self, job: Any, notify_status: Any = None) -> Any:
        """Watch ``job`` (one job, a list, or nested lists); returns the ids, same nesting.

        ``notify_status`` has the same nesting, with a list of statuses per job;
        None means DONE only.  Registering a job again replaces its statuses and
        keeps what was already sent.

        >>> watcher.register_job([job1, job2], notify_status=[["DONE"], ["RUNNING", "DONE"]])
        ['id1', 'id2']
        """
        pairs: list[tuple[Any, list[str]]] = []
        ids = pair(job, notify_status, "", pairs)
        self._register(pairs)
        return ids

    def register_start_and_done(self, jobs: Any) -> list[str]:
        """Watch the first job for RUNNING and the last for DONE; returns their ids.

        >>> watcher.register_start_and_done([job1, job2, job3])   # job1: RUNNING, job3: DONE
        """
        flat = flatten(jobs)
        if not flat:
            raise RegistrationError("register_start_and_done needs at least one job")
        first, last = flat[0], flat[-1]
        if job_id_of(first) == job_id_of(last):
            pairs = [(first, ["RUNNING", "DONE"])]
        else:
            pairs = [(first, ["RUNNING"]), (last, ["DONE"])]
        self._register(pairs)
        return [job_id_of(job) for job, _ in pairs]

    def _register(self, pairs: Sequence[tuple[Any, list[str]]]) -> None:
        rows = []
        for job, names in pairs:
            job_id = job_id_of(job)
            if not isinstance(job, str):
                with self._lock:
                    self._jobs[job_id] = job
            rows.append({"job_id": job_id, "notify_status": names,
                         "backend": None if isinstance(job, str) else job_backend_name(job)})
        self._sql.register(rows, time.time())

    def job_info(self, job_id: Any = None) -> Any:
        """All records (a list of dicts), or the record(s) of ``job_id`` (str or nested ids).

        >>> watcher.job_info("id1")["notify_status"]
        ['DONE']
        """
        if job_id is None:
            return [info_dict(row) for row in self._sql.jobs()]
        ids = flatten(job_id)
        rows = {row.job_id: row for row in self._sql.jobs(ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise JobNotFoundError(
                f"job(s) {', '.join(map(repr, missing))} are not registered; "
                "register_job() them first (job_info() lists what is registered)"
            )
        return nested_map(job_id, lambda i: info_dict(rows[i]))

    def update_job_info(self, info: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Change ``notify_status`` and/or ``label`` of registered jobs.

        >>> watcher.update_job_info({"job_id": "id1", "notify_status": ["DONE", "CANCELLED"]})
        """
        items = [info] if isinstance(info, dict) else list(info)
        changes = []
        for item in items:
            if not isinstance(item, dict) or "job_id" not in item:
                raise RegistrationError(
                    f"update_job_info takes dicts with a 'job_id' key, got {item!r}"
                )
            unknown = set(item) - {"job_id", "notify_status", "label"}
            if unknown:
                raise RegistrationError(
                    f"update_job_info cannot change {sorted(unknown)}; "
                    "only 'notify_status' and 'label' can be updated"
                )
            values: dict[str, Any] = {}
            if "notify_status" in item:
                values["notify_status"] = statuses(item["notify_status"], "")
            if "label" in item:
                values["label"] = None if item["label"] is None else str(item["label"])
            changes.append((item["job_id"], values))
        self.job_info([job_id for job_id, _ in changes])  # every id must exist
        now = time.time()
        for job_id, values in changes:
            if values:
                self._sql.update(job_id, values, now)

    def delete_job(self, job_id: Any) -> int:
        """Stop watching the given job(s) (nested ids allowed) and forget their history.

        Never waits for a poll or a notifier in progress.
        """
        ids = flatten(job_id)
        self.job_info(ids)  # every id must exist
        with self._lock:
            for i in ids:
                self._jobs.pop(i, None)
        return self._sql.delete(ids)

    def delete_all_jobs(self) -> int:
        """Forget every registered job; returns how many there were."""
        with self._lock:
            self._jobs.clear()
        return self._sql.delete(None)

    def notifications(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The notifications recorded so far (job_id, status, delivered_at, error, ...)."""
        return self._sql.notifications(job_id)

    # -- polling --------------------------------------------------------------------------
    def poll_once(self) -> list[JobEvent]:
        """Check every watched job once and deliver what is due; returns new events.

        The background thread calls this every ``poll_interval`` seconds; call
        it yourself for a watcher without a thread.
        """
        return self._poll(_Run())

    def pending(self) -> int:
        """How many notifications are still being delivered (retries included)."""
        return len(self._outbox)

    def _poll(self, run: _Run) -> list[JobEvent]:
        with self._cycle:
            self._adopt_orphans(time.time())
            with self._lock:
                known = dict(self._jobs)
            events = []
            for row in self._sql.jobs():
                if run.abandoned.is_set():
                    break
                if row.last_status in FINAL_STATUSES:
                    continue
                status = self._current_status(row.job_id, known.get(row.job_id))
                if status is None or status == row.last_status:
                    continue
                # The notification rows are created (and claimed) with the status, in
                # one transaction: that is what makes each of them exist only once.
                created = self._sql.record_status(row.job_id, status, entered_statuses,
                                                  self.token, time.time())
                for note in created:
                    event = self._enqueue(note, row)
                    if event is not None:
                        events.append(event)
            self._deliver_due(run)
            if run.abandoned.is_set():
                self._hand_over()
            elif len(self._outbox) and time.time() - self._last_renew > self.lease / 3:
                self._sql.renew_claims(self.token, time.time())
                self._last_renew = time.time()
            return events

    def _current_status(self, job_id: str, job: Any) -> str | None:
        """The job's status name now (a remote call for remote jobs), None if unknown."""
        if job is None:
            job = self._resolve(job_id)
            if job is None:
                return None
        try:
            return status_name(job.status())
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
            LOG.warning("qdataset job watcher: cannot get the status of job %s: %s",
                        job_id, exc)
            return None

    def _resolve(self, job_id: str) -> Any:
        if self.resolver is not None:
            try:
                job = self.resolver(job_id)
            except Exception as exc:  # noqa: BLE001
                LOG.warning("qdataset job watcher: resolver failed for %s: %s", job_id, exc)
                job = None
            if job is not None:
                with self._lock:
                    self._jobs[job_id] = job
                return job
        if self._queue is None:  # only polls get here, and they hold _cycle
            from .queue import JobQueue

            self._queue = JobQueue(self.store)
        try:
            self._queue.status(job_id)
        except Exception:  # noqa: BLE001 - not a queued job
            return None
        return _QueueStatus(self._queue, job_id)

    def _enqueue(self, note: NotificationRow, row: WatchRow | None) -> JobEvent | None:
        """Start delivering ``note``; None if this watcher is delivering it already."""
        event = JobEvent(note.job_id, note.status, note.previous, note.event_time,
                         row.label if row else None, row.backend if row else None)
        return event if self._outbox.add(event, self.notifiers, time.time()) else None

    def _adopt_orphans(self, now: float) -> None:
        orphans = self._sql.claim_undelivered(self.token, now - self.lease, now)
        if not orphans:
            return
        rows = {row.job_id: row for row in self._sql.jobs({n.job_id for n in orphans})}
        for note in orphans:
            if self._enqueue(note, rows.get(note.job_id)) is not None:
                LOG.info("qdataset job watcher: delivering %s/%s left by another watcher",
                         note.job_id, note.status)

    def _deliver_due(self, run: _Run) -> None:
        """Try each attempt that is due once, calling notifiers without holding a lock."""
        for key, attempt in self._outbox.due(time.time()):
            event = self._outbox.begin(key, attempt, run.abandoned)
            if event is None:
                continue
            error: Exception | None = None
            try:
                attempt.notifier.notify(event)
            except Exception as exc:  # noqa: BLE001 - never let a notifier stop us
                error = exc
            outcome = self._outbox.settle(key, attempt, error, retries=self.retries,
                                          backoff=self.backoff, now=time.time())
            _log_attempt(attempt, event, error, outcome.gave_up, outcome.retry_in)
            if outcome.finished is not None:
                self._sql.mark_delivered(*key, "; ".join(outcome.finished.errors) or None,
                                         time.time())

    def _hand_over(self) -> list[Key]:
        """Release the deliveries not in flight, so the next watcher sends them at once."""
        keys = self._outbox.drop_idle()
        if keys:
            self._sql.release(self.token, keys)
        return keys

    # -- thread ------------------------------------------------------------------------
    def start(self) -> JobWatcher:
        """Start polling in a background (daemon) thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._run_state = run = _Run()
        self._thread = threading.Thread(target=self._run, args=(run,),
                                        name="qdataset-job-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread after a last poll; undelivered notifications go to the next watcher.

        Waits at most ``timeout`` seconds for the thread.  If it is still inside
        a notifier or a job's ``status()`` then, it is left to finish that one
        call in the background (the notification it is sending is recorded as
        delivered, never sent twice) and starts nothing else.
        """
        thread, run = self._thread, self._run_state
        if thread is not None:
            run.stop.set()
            thread.join(timeout)
            self._thread = None
            if thread.is_alive():
                LOG.warning("qdataset job watcher: still busy after %s s (a slow notifier "
                            "or job); it finishes that call in the background", timeout)
                run.abandoned.set()  # before _hand_over: no delivery starts after it
        self._hand_over()

    @property
    def running(self) -> bool:
        """True while the background thread is polling."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self, run: _Run) -> None:
        while True:
            try:
                self._poll(run)
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable
                LOG.exception("qdataset job watcher: poll failed; trying again")
            if run.stop.is_set():
                return
            wait = min(self.poll_interval, max(0.0, self._outbox.next_due() - time.time()))
            if run.stop.wait(wait):
                if not run.abandoned.is_set():
                    try:
                        self._poll(run)  # a last look, so a just-finished job is not missed
                    except Exception:  # noqa: BLE001
                        LOG.exception("qdataset job watcher: final poll failed")
                return

    def __enter__(self) -> JobWatcher:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _log_attempt(attempt: Attempt, event: JobEvent, error: Exception | None,
                 gave_up: bool, retry_in: float | None) -> None:
    if error is None:
        return
    name = notifier_name(attempt.notifier)
    if gave_up:
        LOG.error("qdataset job watcher: %s gave up on %s after %d attempts: %s",
                  name, event, attempt.failures, error)
    else:
        LOG.warning("qdataset job watcher: %s failed for %s (%s); retrying in %.1f s",
                    name, event, error, retry_in or 0.0)
