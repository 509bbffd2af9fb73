"""JobWatcher: register jobs, poll their statuses, notify once per status entered.

Records live in the database (``watched_jobs``, ``job_notifications``).  A
notification is a row keyed by (job, status), created in the same transaction
that stores the status just seen, so each one exists at most once, ever: a
second watcher, or the same one after a restart, never sends it again.
Delivery follows the outbox pattern: the row is marked delivered once every
notifier succeeded or gave up after its retries; rows a crashed watcher left
undelivered are picked up by the next watcher after ``lease`` seconds (or at
once, after a clean :meth:`JobWatcher.stop`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store.jobs import NotificationRow, WatchRow, WatchStorage
from .errors import JobNotFoundError, RegistrationError
from .notifiers import JobEvent, as_notifier, notifier_name
from .records import FINAL_STATUSES, status_name

LOG = logging.getLogger("qdataset.jobs")

#: A job seen DONE has certainly been RUNNING, even if no poll caught it running.
_IMPLIED_BEFORE = {"DONE": ("RUNNING",)}


def job_id_of(job: Any) -> str:
    """The id of a qiskit-style job (``job.job_id()``), or a job id string itself."""
    if isinstance(job, str):
        return job
    ident = getattr(job, "job_id", None)
    if callable(ident):
        ident = ident()
    if not isinstance(ident, str) or not ident:
        raise RegistrationError(
            f"{job!r} is not a job: register objects with a job_id() method "
            "(qiskit jobs) or lists of them"
        )
    return ident


def _statuses(value: Any, where: str) -> list[str]:
    if value is None:
        return ["DONE"]
    items = [value] if isinstance(value, str) or hasattr(value, "name") else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise RegistrationError(
            f"notify_status{where} must be a non-empty list of statuses such as "
            f"['DONE', 'ERROR'], not {value!r}"
        )
    names: list[str] = []
    for item in items:
        name = status_name(item)
        if name not in names:
            names.append(name)
    return names


def _pair(jobs: Any, notify: Any, where: str, out: list[tuple[Any, list[str]]]) -> Any:
    """Walk ``jobs`` and ``notify`` together; collect (job, statuses); return ids nested."""
    if isinstance(jobs, (list, tuple)):
        if notify is not None and (not isinstance(notify, (list, tuple))
                                   or len(notify) != len(jobs)):
            raise RegistrationError(
                f"notify_status{where} must have the same nesting as the jobs: a list of "
                f"{len(jobs)} entries, one per job or sub-list, got {notify!r}"
            )
        return [_pair(job, None if notify is None else notify[i], f"{where}[{i}]", out)
                for i, job in enumerate(jobs)]
    out.append((jobs, _statuses(notify, where)))
    return job_id_of(jobs)


def _flatten(items: Any) -> list[Any]:
    if isinstance(items, (list, tuple)):
        return [leaf for item in items for leaf in _flatten(item)]
    return [items]


def _nested_map(ids: Any, function: Callable[[str], Any]) -> Any:
    if isinstance(ids, (list, tuple)):
        return [_nested_map(item, function) for item in ids]
    return function(ids)


def _backend_name(job: Any) -> str | None:
    try:
        backend = job.backend()
        name = backend.name
        return name() if callable(name) else str(name)
    except Exception:  # noqa: BLE001 - the backend name is only informative
        return None


def entered_statuses(previous: str | None, notify: list[str], status: str) -> list[str]:
    """The watched statuses a job entered when it was seen in ``status`` after ``previous``."""
    candidates = [s for s in _IMPLIED_BEFORE.get(status, ()) if s != previous] + [status]
    return [s for s in candidates if s in notify]


@dataclass
class _Delivery:
    """One notification being delivered to the notifiers that have not had it yet."""

    event: JobEvent
    todo: list[tuple[Any, int, float]]  # (notifier, failed attempts, next try at)
    errors: list[str] = field(default_factory=list)


class _QueueStatus:
    """Status of a job of this store's job queue, for jobs without a live object."""

    def __init__(self, queue: Any, job_id: str) -> None:
        self._queue, self._job_id = queue, job_id

    def status(self) -> str:
        return self._queue.status(self._job_id).status


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
        if poll_interval <= 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.store = store
        self.notifiers = [as_notifier(n) for n in notifiers]
        self.poll_interval = poll_interval
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.lease = float(lease)
        self.resolver = resolver
        self.token = uuid.uuid4().hex
        self._sql = WatchStorage(store)
        self._jobs: dict[str, Any] = {}
        self._deliveries: dict[tuple[str, str], _Delivery] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
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
        ids = _pair(job, notify_status, "", pairs)
        self._register(pairs)
        return ids

    def register_start_and_done(self, jobs: Any) -> list[str]:
        """Watch the first job for RUNNING and the last for DONE; returns their ids.

        >>> watcher.register_start_and_done([job1, job2, job3])   # job1: RUNNING, job3: DONE
        """
        flat = _flatten(jobs)
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
        for job, statuses in pairs:
            job_id = job_id_of(job)
            if not isinstance(job, str):
                with self._lock:
                    self._jobs[job_id] = job
            rows.append({"job_id": job_id, "notify_status": statuses,
                         "backend": None if isinstance(job, str) else _backend_name(job)})
        self._sql.register(rows, time.time())

    def job_info(self, job_id: Any = None) -> Any:
        """All records (a list of dicts), or the record(s) of ``job_id`` (str or nested ids).

        >>> watcher.job_info("id1")["notify_status"]
        ['DONE']
        """
        if job_id is None:
            return [_info(row) for row in self._sql.jobs()]
        ids = _flatten(job_id)
        rows = {row.job_id: row for row in self._sql.jobs(ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise JobNotFoundError(
                f"job(s) {', '.join(map(repr, missing))} are not registered; "
                "register_job() them first (job_info() lists what is registered)"
            )
        return _nested_map(job_id, lambda i: _info(rows[i]))

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
                values["notify_status"] = _statuses(item["notify_status"], "")
            if "label" in item:
                values["label"] = None if item["label"] is None else str(item["label"])
            changes.append((item["job_id"], values))
        self.job_info([job_id for job_id, _ in changes])  # every id must exist
        now = time.time()
        for job_id, values in changes:
            if values:
                self._sql.update(job_id, values, now)

    def delete_job(self, job_id: Any) -> int:
        """Stop watching the given job(s) (nested ids allowed) and forget their history."""
        ids = _flatten(job_id)
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
        with self._lock:
            now = time.time()
            self._adopt_orphans(now)
            events = []
            for row in self._sql.jobs():
                if row.last_status in FINAL_STATUSES:
                    continue
                status = self._current_status(row.job_id)
                if status is None or status == row.last_status:
                    continue
                created = self._sql.record_status(row.job_id, status, entered_statuses,
                                                  self.token, time.time())
                for note in created:
                    events.append(self._enqueue(note, row))
            self._deliver_due()
            if self._deliveries and time.time() - self._last_renew > self.lease / 3:
                self._sql.renew_claims(self.token, time.time())
                self._last_renew = time.time()
            return events

    def pending(self) -> int:
        """How many notifications are still being delivered (retries included)."""
        with self._lock:
            return len(self._deliveries)

    def _current_status(self, job_id: str) -> str | None:
        job = self._jobs.get(job_id)
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
                self._jobs[job_id] = job
                return job
        if self._queue is None:
            from .queue import JobQueue

            self._queue = JobQueue(self.store)
        try:
            self._queue.status(job_id)
        except Exception:  # noqa: BLE001 - not a queued job
            return None
        return _QueueStatus(self._queue, job_id)

    def _enqueue(self, note: NotificationRow, row: WatchRow | None) -> JobEvent:
        event = JobEvent(note.job_id, note.status, note.previous, note.event_time,
                         row.label if row else None, row.backend if row else None)
        now = time.time()
        self._deliveries[(note.job_id, note.status)] = _Delivery(
            event, [(notifier, 0, now) for notifier in self.notifiers])
        return event

    def _adopt_orphans(self, now: float) -> None:
        orphans = self._sql.claim_undelivered(self.token, now - self.lease, now)
        if not orphans:
            return
        rows = {row.job_id: row for row in self._sql.jobs({n.job_id for n in orphans})}
        for note in orphans:
            if (note.job_id, note.status) not in self._deliveries:
                LOG.info("qdataset job watcher: delivering %s/%s left by another watcher",
                         note.job_id, note.status)
                self._enqueue(note, rows.get(note.job_id))

    def _deliver_due(self) -> None:
        for key, delivery in list(self._deliveries.items()):
            still: list[tuple[Any, int, float]] = []
            for notifier, failures, due in delivery.todo:
                if time.time() < due:
                    still.append((notifier, failures, due))
                    continue
                try:
                    notifier.notify(delivery.event)
                except Exception as exc:  # noqa: BLE001 - never let a notifier stop us
                    failures += 1
                    name = notifier_name(notifier)
                    if failures > self.retries:
                        LOG.error("qdataset job watcher: %s gave up on %s after %d attempts: %s",
                                  name, delivery.event, failures, exc)
                        delivery.errors.append(f"{name}: {exc}")
                    else:
                        wait = self.backoff * 2 ** (failures - 1)
                        LOG.warning("qdataset job watcher: %s failed for %s (%s); "
                                    "retrying in %.1f s", name, delivery.event, exc, wait)
                        still.append((notifier, failures, time.time() + wait))
            delivery.todo = still
            if not still:
                del self._deliveries[key]
                self._sql.mark_delivered(*key, "; ".join(delivery.errors) or None, time.time())

    def _next_due(self) -> float:
        dues = [due for d in self._deliveries.values() for _, _, due in d.todo]
        return min(dues) if dues else float("inf")

    # -- thread ------------------------------------------------------------------------
    def start(self) -> JobWatcher:
        """Start polling in a background (daemon) thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="qdataset-job-watcher",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread after a last poll; undelivered notifications go to the next watcher."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join(timeout)
            self._thread = None
        with self._lock:
            if self._deliveries:
                self._deliveries.clear()
                self._sql.release(self.token)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable
                LOG.exception("qdataset job watcher: poll failed; trying again")
            if self._stop.is_set():
                return
            wait = min(self.poll_interval, max(0.0, self._next_due() - time.time()))
            if self._stop.wait(wait):
                try:
                    self.poll_once()  # a last look, so a just-finished job is not missed
                except Exception:  # noqa: BLE001
                    LOG.exception("qdataset job watcher: final poll failed")
                return

    def __enter__(self) -> JobWatcher:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _info(row: WatchRow) -> dict[str, Any]:
    return {"job_id": row.job_id, "notify_status": row.notify_status,
            "status": row.last_status, "notified": row.notified, "label": row.label,
            "backend": row.backend, "registered_at": row.registered_at,
            "updated_at": row.updated_at}
