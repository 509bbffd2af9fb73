"""FolderQueue: the job queue over sqooler's local folder layout.

::

    <root>/backends/configs/<backend>.json        backend configurations
    <root>/jobs/queued/<backend>/<job_id>.json    job payloads, moved between
    <root>/jobs/running/<backend>/<job_id>.json     the state folders by
    <root>/jobs/finished/<backend>/<job_id>.json    os.rename, which is atomic:
    <root>/jobs/deleted/<backend>/<job_id>.json     one claimer wins each job
    <root>/status/<backend>/<job_id>.json         {job_id, status, detail, error_message}
    <root>/results/<backend>/<job_id>.json        results of DONE jobs

Folders written by sqooler itself (running and deleted jobs directly in
``jobs/running`` and ``jobs/deleted``) are read as well.  Every file is
written to ``<root>/.tmp`` first and renamed into place, so readers never see
half a file.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _transitions as tr
from .errors import FolderQueueError
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


class FolderQueue:
    """A job queue in a folder, with the same methods as :class:`JobQueue`.

    >>> queue = FolderQueue("/srv/sqooler-storage")
    >>> queue.upload_config("aer", {"backend_version": "0.18"})
    >>> job_id = queue.submit("aer", {"format": "qasm3", "circuits": [qasm], "shots": 100})
    >>> claim = queue.claim_next("aer")        # moves the file to jobs/running/aer/
    >>> queue.finish(claim.job_id, {"counts": {"0": 100}})
    """

    def __init__(self, path: str | os.PathLike) -> None:
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

        The move is one ``os.rename``: of several concurrent claimers exactly one wins.
        """
        check_backend_name(backend)
        queued = self.root / "jobs" / "queued" / backend
        running = self.root / "jobs" / "running" / backend
        running.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self._write(self.root / "backends" / "queue_checks" / f"{backend}.json",
                    json.dumps({"last_queue_check": now}))
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
            status = self.root / "status" / backend / f"{job_id}.json"
            username = self._read(status).get("username") if status.is_file() else None
            self._write_status(backend, job_id, "RUNNING", "Claimed by a worker.")
            return ClaimedJob(job_id, backend, payload, username, now)
        return None

    def finish(self, job_id: str, result: Mapping[str, Any]) -> None:
        """Write ``results/<backend>/<id>.json``; the job file moves to ``jobs/finished``."""
        check_job_id(job_id)
        text = tr.result_json(job_id, result)
        backend = self._move(job_id, "finish", "finished")
        self._write(self.root / "results" / backend / f"{job_id}.json", text)
        self._write_status(backend, job_id, "DONE", "Finished.")

    def fail(self, job_id: str, message: str) -> None:
        """Mark a queued or running job as ERROR; its file moves to ``jobs/deleted``."""
        check_job_id(job_id)
        message = tr.check_message(message)
        backend = self._move(job_id, "fail", "deleted")
        self._write_status(backend, job_id, "ERROR", "Failed.", message)

    def cancel(self, job_id: str) -> None:
        """Withdraw a queued job; its file moves to ``jobs/deleted``, state CANCELLED."""
        backend = self._move(check_job_id(job_id), "cancel", "deleted")
        self._write_status(backend, job_id, "CANCELLED", "Cancelled before it ran.")

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

    def _move(self, job_id: str, operation: str, to_state: str) -> str:
        """Rename the job file into ``to_state`` if the operation is allowed from where it is."""
        allowed = {s for s, name in _STATES.items()
                   if name in tr.TRANSITIONS[operation][0]}
        found = self._locate(job_id)
        if found is None:
            raise tr.not_found(job_id)
        state, backend, path = found
        backend = backend or self._backend_of(job_id) or "unknown"
        if state not in allowed:
            raise tr.transition_error(job_id, operation, self.status(job_id).status)
        target = self._job_path(to_state, backend, job_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except FileNotFoundError:  # moved by someone else meanwhile
            raise tr.transition_error(job_id, operation, self.status(job_id).status) from None
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
