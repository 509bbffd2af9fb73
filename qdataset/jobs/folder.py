"""FolderQueue: the job queue over sqooler's local folder layout.

::

    <root>/backends/configs/<backend>.json        backend configurations
    <root>/jobs/queued/<backend>/<job_id>.json    job payloads, moved between
    <root>/jobs/running/<backend>/<job_id>.json     the state folders by
    <root>/jobs/finished/<backend>/<job_id>.json    os.rename, which is atomic:
    <root>/jobs/deleted/<backend>/<job_id>.json     one claimer wins each job
    <root>/status/<backend>/<job_id>.json         {job_id, status, detail, error_message}
    <root>/results/<backend>/<job_id>.json        results of DONE jobs
    <root>/leases/<job_id>.json                   the lease of a running job's claim
    <root>/leases/<job_id>.lock                   held while a job's state changes

Claims are leases, as in :class:`~qdataset.jobs.JobQueue`: the status file of
a claimed job records ``attempts`` and its ``claim_token``, and the lease file
its holder (host, pid) and when the lease runs out unless renewed.  A running
job whose lease is lost is moved back to ``jobs/queued`` (or, after
``max_attempts`` claims, to ``jobs/deleted`` as ERROR) by the next
``claim_next``.  Every change of a claimed job's state (finish, fail, renew,
requeue) happens under the job's lock file (created with ``O_EXCL``; a lock
left by a dead process on this host, or older than a minute, is broken), so
only the holder of the current claim can finish a job.

Folders written by sqooler itself (running and deleted jobs directly in
``jobs/running`` and ``jobs/deleted``) are read as well.  Every file is
written to ``<root>/.tmp`` first and renamed into place, so readers never see
half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import _lease
from . import _transitions as tr
from .errors import FolderQueueError, NotHolderError
from .queue import _backend_status
from .records import (
    BackendStatus,
    ClaimedJob,
    QueueJobStatus,
    check_backend_name,
    check_job_id,
    new_job_id,
)

_STATES = {"queued": "QUEUED", "running": "RUNNING", "finished": "DONE", "deleted": "ERROR"}

#: A job lock file older than this is taken to be left by a crashed process.
_STALE_LOCK = 60.0
#: How long a job operation waits for the job's lock before giving up.
_LOCK_WAIT = 30.0


class FolderQueue:
    """A job queue in a folder, with the same methods as :class:`JobQueue`.

    >>> queue = FolderQueue("/srv/sqooler-storage")
    >>> queue.upload_config("aer", {"backend_version": "0.18"})
    >>> job_id = queue.submit("aer", {"format": "qasm3", "circuits": [qasm], "shots": 100})
    >>> claim = queue.claim_next("aer")        # moves the file to jobs/running/aer/
    >>> queue.finish(claim.job_id, {"counts": {"0": 100}})
    """

    def __init__(self, path: str | os.PathLike, *, lease_timeout: float | None = None,
                 max_attempts: int = _lease.DEFAULT_MAX_ATTEMPTS) -> None:
        """``lease_timeout``: seconds a claim stays valid without renewal (default
        10 s); ``max_attempts``: claims of one job before losing it once more ends
        it as ERROR."""
        self.lease_timeout = _lease.lease_timeout_of(lease_timeout)
        self.max_attempts = _lease.check_max_attempts(max_attempts)
        self._claims: dict[str, str] = {}  # job id -> token of the claims made here
        self.root = Path(path).expanduser().absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FolderQueueError(
                f"cannot create the queue folder {str(self.root)!r}: {exc}; "
                "pass a folder you may write to"
            ) from exc

    def __repr__(self) -> str:
        return f"<FolderQueue {str(self.root)!r}>"

    def close(self) -> None:
        """Nothing to release; present for symmetry with :class:`JobQueue`."""

    def __enter__(self) -> FolderQueue:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- files ---------------------------------------------------------------------
    def _write(self, target: Path, text: str) -> None:
        # Write beside, then rename: readers never see a half-written file.
        try:
            tmp_dir = self.root / ".tmp"
            tmp_dir.mkdir(exist_ok=True)
            tmp = tmp_dir / f"{uuid.uuid4().hex}.json"
            tmp.write_text(text, encoding="utf-8")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except OSError as exc:
            raise FolderQueueError(f"cannot write {str(target)!r}: {exc}") from exc

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            with open(path, encoding="utf-8") as file:
                return json.load(file)
        except (OSError, ValueError) as exc:  # ValueError: not JSON (or not UTF-8)
            raise FolderQueueError(
                f"cannot read {str(path)!r} as a JSON file of the queue: {exc}"
            ) from exc

    def _config_path(self, backend: str) -> Path:
        return self.root / "backends" / "configs" / f"{check_backend_name(backend)}.json"

    def _job_path(self, state: str, backend: str, job_id: str) -> Path:
        return self.root / "jobs" / state / backend / f"{job_id}.json"

    def _locate(self, job_id: str) -> tuple[str, str | None, Path] | None:
        """(state folder, backend, path) of a job file, searching every state."""
        for state in _STATES:
            folder = self.root / "jobs" / state
            if not folder.is_dir():
                continue
            legacy = folder / f"{job_id}.json"  # sqooler: running/deleted without backend
            if legacy.is_file():
                return state, self._backend_of(job_id), legacy
            for sub in folder.iterdir():
                path = sub / f"{job_id}.json"
                if sub.is_dir() and path.is_file():
                    return state, sub.name, path
        return None

    def _backend_of(self, job_id: str) -> str | None:
        status_root = self.root / "status"
        if status_root.is_dir():
            for sub in status_root.iterdir():
                if (sub / f"{job_id}.json").is_file():
                    return sub.name
        return None

    def _write_status(self, backend: str, job_id: str, status: str, detail: str,
                      error_message: str | None = None, **extra: Any) -> None:
        path = self.root / "status" / backend / f"{job_id}.json"
        record = {"job_id": job_id, "status": status, "detail": detail,
                  "error_message": "None" if error_message is None else error_message}
        if path.is_file() and not extra:
            previous = self._read(path)
            extra = {k: v for k, v in previous.items() if k not in record}
        record.update(extra)
        self._write(path, json.dumps(record))

    def _update_status(self, backend: str, job_id: str, status: str, detail: str,
                       error_message: str | None = None, **changes: Any) -> None:
        """Rewrite the status file, keeping its extra keys; ``changes`` set (None: drop) them."""
        path = self.root / "status" / backend / f"{job_id}.json"
        extra = self._read(path) if path.is_file() else {}
        extra.update(changes)
        extra = {k: v for k, v in extra.items()
                 if v is not None and k not in ("job_id", "status", "detail", "error_message")}
        record = {"job_id": job_id, "status": status, "detail": detail,
                  "error_message": "None" if error_message is None else error_message, **extra}
        self._write(path, json.dumps(record))

    def _status_record(self, backend: str | None, job_id: str) -> dict[str, Any]:
        path = self.root / "status" / (backend or "unknown") / f"{job_id}.json"
        return self._read(path) if path.is_file() else {}

    # -- leases and job locks --------------------------------------------------------
    def _lease_path(self, job_id: str) -> Path:
        return self.root / "leases" / f"{job_id}.json"

    def _read_lease(self, job_id: str) -> dict[str, Any] | None:
        path = self._lease_path(job_id)
        try:
            return self._read(path) if path.is_file() else None
        except FolderQueueError:
            return None  # removed while we read it

    @contextlib.contextmanager
    def _job_lock(self, job_id: str) -> Iterator[None]:
        """Hold ``leases/<job_id>.lock`` (O_EXCL); break one a dead process left."""
        path = self.root / "leases" / f"{job_id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = f"{_lease.this_host()} {os.getpid()} {uuid.uuid4().hex}"
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_stale_lock(path)
                if time.monotonic() > deadline:
                    raise FolderQueueError(
                        f"job {job_id!r} stayed locked by {str(path)!r} for {_LOCK_WAIT:.0f} s; "
                        "if no queue process is running, delete that file") from None
                time.sleep(0.002)
                continue
            except OSError as exc:
                raise FolderQueueError(f"cannot create the lock {str(path)!r}: {exc}") from exc
            with os.fdopen(fd, "w") as file:
                file.write(mine)
            break
        try:
            yield
        finally:
            try:
                if path.read_text() == mine:
                    path.unlink()
            except FileNotFoundError:
                pass

    @staticmethod
    def _break_stale_lock(path: Path) -> None:
        try:
            seen = path.read_text()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return
        host, _, rest = seen.partition(" ")
        pid = rest.split(" ", 1)[0]
        dead = host == _lease.this_host() and pid.isdigit() and not _lease.pid_alive(int(pid))
        if not (dead or age > _STALE_LOCK):
            return
        # Move it aside (one breaker wins); put it back if it was not the stale one.
        aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_text() != seen:
                with contextlib.suppress(FileExistsError):
                    os.link(aside, path)
        finally:
            aside.unlink(missing_ok=True)

    # -- backends ------------------------------------------------------------------
    def upload_config(self, backend: str, config: Mapping[str, Any]) -> None:
        """Create or replace ``backends/configs/<backend>.json``."""
        self._write(self._config_path(backend), tr.config_json(backend, config))

    def get_config(self, backend: str) -> dict[str, Any]:
        """The configuration of ``backend``; BackendNotFoundError if it has none."""
        path = self._config_path(backend)
        if not path.is_file():
            raise tr.backend_not_found(backend)
        return self._read(path)

    def backends(self) -> list[str]:
        """Names of the backends with a configuration file, sorted."""
        folder = self.root / "backends" / "configs"
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json"))

    def backend_status(self, backend: str) -> BackendStatus:
        """Whether ``backend`` is operational and how many jobs wait in its queued folder."""
        config = self.get_config(backend)
        queued = self.root / "jobs" / "queued" / backend
        pending = len(list(queued.glob("*.json"))) if queued.is_dir() else 0
        stamp = self.root / "backends" / "queue_checks" / f"{backend}.json"
        last_check = self._read(stamp)["last_queue_check"] if stamp.is_file() else None
        return _backend_status(backend, config, pending, last_check)

    # -- jobs ----------------------------------------------------------------------
    def submit(self, backend: str, payload: Mapping[str, Any], username: str | None = None
               ) -> str:
        """Write the payload to ``jobs/queued/<backend>/<id>.json``; returns the id."""
        if not self._config_path(backend).is_file():
            raise tr.backend_not_found(backend)
        text = tr.payload_json(payload)
        job_id = new_job_id()
        # The status file first, so a claimer always finds one.
        self._write_status(backend, job_id, "QUEUED", "Waiting for a worker.",
                           username=username)
        self._write(self._job_path("queued", backend, job_id), text)
        return job_id

    def status(self, job_id: str) -> QueueJobStatus:
        """The job's state from ``status/<backend>/<id>.json`` (or from its folder)."""
        check_job_id(job_id)
        backend = self._backend_of(job_id)
        if backend is not None:
            record = self._read(self.root / "status" / backend / f"{job_id}.json")
            error = record.get("error_message")
            return QueueJobStatus(job_id, str(record.get("status", "")),
                                  str(record.get("detail", "")),
                                  None if error in (None, "None") else str(error), backend)
        found = self._locate(job_id)
        if found is None:
            raise tr.not_found(job_id)
        return QueueJobStatus(job_id, _STATES[found[0]], "", None, found[1])

    def claim_next(self, backend: str, worker: str | None = None) -> ClaimedJob | None:
        """Move the oldest queued job file to ``jobs/running/<backend>/``; None if none.

        The move is one ``os.rename``: of several concurrent claimers exactly one
        wins.  Running jobs of ``backend`` whose claim was lost are requeued first.
        """
        check_backend_name(backend)
        queued = self.root / "jobs" / "queued" / backend
        running = self.root / "jobs" / "running" / backend
        running.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self._write(self.root / "backends" / "queue_checks" / f"{backend}.json",
                    json.dumps({"last_queue_check": now}))
        self.requeue_lost(backend)
        if not queued.is_dir():
            return None
        for name in _oldest_first(queued):
            target = running / name
            try:
                os.rename(queued / name, target)
            except FileNotFoundError:
                continue  # another worker took it
            job_id = name[: -len(".json")]
            payload = self._read(target)
            token = _lease.new_token()
            here, pid = _lease.this_host(), os.getpid()
            with self._job_lock(job_id):
                now = time.time()
                record = self._status_record(backend, job_id)
                attempts = int(record.get("attempts") or 0) + 1
                expires = now + self.lease_timeout
                self._write(self._lease_path(job_id), json.dumps(
                    {"job_id": job_id, "backend": backend, "worker": worker, "host": here,
                     "pid": pid, "token": token, "claimed_at": now,
                     "lease_expires_at": expires}))
                self._update_status(backend, job_id, "RUNNING", "Claimed by a worker.",
                                    attempts=attempts, claim_token=token, worker=worker)
            self._claims[job_id] = token
            return ClaimedJob(job_id, backend, payload, record.get("username"), now, token,
                              attempts, expires, self.lease_timeout)
        return None

    def renew(self, claim: ClaimedJob) -> float:
        """Extend ``claim``'s lease by ``lease_timeout``; returns the new expiry (unix s).

        :class:`LeaseLostError` if the claim is gone (the job was requeued).
        """
        with self._job_lock(claim.job_id):
            lease = self._read_lease(claim.job_id)
            running = self._job_path("running", claim.backend, claim.job_id)
            if claim.token is None or lease is None or lease.get("token") != claim.token \
                    or not running.is_file():
                record = self._status_record(claim.backend, claim.job_id)
                raise _lease.lease_lost(claim.job_id, str(record.get("status", "unknown")),
                                        int(record.get("attempts") or 0), "renew")
            expires = time.time() + self.lease_timeout
            self._write(self._lease_path(claim.job_id),
                        json.dumps({**lease, "lease_expires_at": expires}))
        return expires

    def requeue_lost(self, backend: str) -> list[str]:
        """Move running jobs of ``backend`` whose claim is lost back to the queue; their ids.

        A job claimed ``max_attempts`` times goes to ``jobs/deleted`` as ERROR instead.
        """
        running = self.root / "jobs" / "running" / check_backend_name(backend)
        if not running.is_dir():
            return []
        here, alive = _lease.this_host(), {}
        moved = []
        for name in _oldest_first(running):
            job_id = name[: -len(".json")]
            if self._lost(backend, job_id, here, alive) is None:
                continue
            with self._job_lock(job_id):  # look again: the holder may have moved on
                reason = self._lost(backend, job_id, here, alive)
                if reason is None:
                    continue
                record = self._status_record(backend, job_id)
                attempts = int(record.get("attempts") or 0)
                source = running / name
                if attempts >= self.max_attempts:
                    target, status, detail = "deleted", "ERROR", "Failed."
                    message: str | None = (f"worker lost {attempts} times (last: {reason}); "
                                           f"a job is tried at most {self.max_attempts} times")
                else:
                    target, status, detail = "queued", "QUEUED", f"Requeued: {reason}."
                    message = None
                destination = self._job_path(target, backend, job_id)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(source, destination)
                except FileNotFoundError:
                    continue
                self._lease_path(job_id).unlink(missing_ok=True)
                self._update_status(backend, job_id, status, detail, message,
                                    claim_token=None, worker=None)
                moved.append(job_id)
        return moved

    def _lost(self, backend: str, job_id: str, here: str, alive: dict[int, bool]
              ) -> str | None:
        """Why the claim on running job ``job_id`` is lost, or None while it is held."""
        path = self._job_path("running", backend, job_id)
        lease = self._read_lease(job_id)
        token = self._status_record(backend, job_id).get("claim_token")
        if lease is not None and lease.get("token") == token and token is not None:
            return _lease.lost_reason(lease.get("host"), lease.get("pid"),
                                      lease.get("lease_expires_at"), time.time(), here=here,
                                      alive=alive)
        # Claimed without a lease (by an older qdataset, or a claimer that died before
        # writing it): the claim counts from the job file's move into jobs/running.
        try:
            since = path.stat().st_ctime
        except FileNotFoundError:
            return None
        if since + self.lease_timeout < time.time():
            return "its claim has no lease and is older than the lease timeout"
        return None

    def attempts(self, job_id: str) -> int:
        """How many times the job has been claimed so far."""
        found = self._locate(check_job_id(job_id))
        if found is None:
            raise tr.not_found(job_id)
        backend = found[1] or self._backend_of(job_id)
        return int(self._status_record(backend, job_id).get("attempts") or 0)

    def finish(self, job_id: str, result: Mapping[str, Any], *, token: str | None = None
               ) -> None:
        """Write ``results/<backend>/<id>.json``; the job file moves to ``jobs/finished``.

        Accepted from the holder of the job's current claim (see
        :meth:`JobQueue.finish <qdataset.jobs.JobQueue.finish>`).
        """
        check_job_id(job_id)
        text = tr.result_json(job_id, result)
        with self._job_lock(job_id):
            backend = self._move(job_id, "finish", "finished", token)
            self._write(self.root / "results" / backend / f"{job_id}.json", text)
            self._update_status(backend, job_id, "DONE", "Finished.")
            self._lease_path(job_id).unlink(missing_ok=True)

    def fail(self, job_id: str, message: str, *, token: str | None = None) -> None:
        """Mark a queued or running job as ERROR; its file moves to ``jobs/deleted``."""
        check_job_id(job_id)
        message = tr.check_message(message)
        with self._job_lock(job_id):
            backend = self._move(job_id, "fail", "deleted", token)
            self._update_status(backend, job_id, "ERROR", "Failed.", message)
            self._lease_path(job_id).unlink(missing_ok=True)

    def cancel(self, job_id: str) -> None:
        """Withdraw a queued job; its file moves to ``jobs/deleted``, state CANCELLED."""
        with self._job_lock(check_job_id(job_id)):
            backend = self._move(job_id, "cancel", "deleted", None)
            self._update_status(backend, job_id, "CANCELLED", "Cancelled before it ran.")

    def result(self, job_id: str) -> dict[str, Any]:
        """The result of a DONE job (JobFailedError / ResultNotReadyError otherwise)."""
        state = self.status(job_id)
        text = None
        if state.status == "DONE" and state.backend is not None:
            path = self.root / "results" / state.backend / f"{job_id}.json"
            text = path.read_text(encoding="utf-8") if path.is_file() else None
        return tr.result_or_raise(job_id, state.status, state.error_message, text)

    def payload(self, job_id: str) -> dict[str, Any]:
        """The payload a job was submitted with."""
        found = self._locate(check_job_id(job_id))
        if found is None:
            raise tr.not_found(job_id)
        return self._read(found[2])

    def jobs(self, backend: str | None = None, status: str | None = None) -> list[str]:
        """Job ids (oldest first), optionally of one backend and/or status."""
        ids: list[tuple[int, str]] = []
        for state in _STATES:
            folder = self.root / "jobs" / state
            if not folder.is_dir():
                continue
            for path in folder.glob("**/*.json"):
                owner = path.parent.name if path.parent != folder else None
                if backend is not None and owner not in (backend, None):
                    continue
                job_id = path.stem
                if status is not None and self.status(job_id).status != status:
                    continue
                if backend is not None and owner is None and self._backend_of(job_id) != backend:
                    continue
                ids.append((path.stat().st_mtime_ns, job_id))
        return [job_id for _, job_id in sorted(ids)]

    def _move(self, job_id: str, operation: str, to_state: str, token: str | None) -> str:
        """Rename the job file into ``to_state`` if the operation is allowed from where it
        is and the caller holds the current claim; called under the job's lock."""
        allowed = {s for s, name in _STATES.items()
                   if name in tr.TRANSITIONS[operation][0]}
        found = self._locate(job_id)
        if found is None:
            raise tr.not_found(job_id)
        state, backend, path = found
        backend = backend or self._backend_of(job_id) or "unknown"
        record = self._status_record(backend, job_id)
        current = record.get("claim_token")
        mine = self._claims.get(job_id) if operation != "cancel" else None
        token = token or mine
        if token is not None and current != token:
            raise _lease.lease_lost(job_id, self.status(job_id).status,
                                    int(record.get("attempts") or 0), operation)
        if token is None and state == "running" and current is not None:
            lease = self._read_lease(job_id) or {}
            raise NotHolderError(
                f"job {job_id!r} is RUNNING under a claim held by worker "
                f"{lease.get('host')}:{lease.get('pid')}; only the queue object whose "
                f"claim_next returned it may {operation} it (or pass token=claim.token)")
        if state not in allowed:
            raise tr.transition_error(job_id, operation, self.status(job_id).status)
        target = self._job_path(to_state, backend, job_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except FileNotFoundError:  # moved by someone else meanwhile
            raise tr.transition_error(job_id, operation, self.status(job_id).status) from None
        self._claims.pop(job_id, None)
        return backend


def _oldest_first(folder: Path) -> list[str]:
    entries = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    entries.append((entry.stat().st_mtime_ns, entry.name))
                except FileNotFoundError:
                    continue
    return [name for _, name in sorted(entries)]
