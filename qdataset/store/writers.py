"""Writer leases: one writing process per run, and when another may take over.

The process that creates (or resumes) a run holds its *writer lease*: the
run's row records the writer's host, pid and a random token, and when the
lease runs out unless renewed.  Every write of results or parameters, and the
completion, presents the token inside its own transaction (runs.py), so a
handle whose lease was taken over can never write into the run again,
whatever Python objects it still has.

A writer is gone, and its run may be resumed or completed by someone else,
when it released its lease (``store.close()``), when it ran on this host and
its pid is dead (or, in this very process, its lease is no longer held by a
live DataSet), or when it ran on another host and did not renew its lease for
the store's ``lease_timeout``.  :class:`LeaseKeeper` is the store's background
thread that renews the leases it holds and notices when one was taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import StoreError, WriterActiveError

log = logging.getLogger("qdataset")

#: A lease is renewed this many times per lease timeout.
RENEWALS_PER_LEASE = 3


def this_host() -> str:
    """The host name leases record (``socket.gethostname()``)."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def new_token() -> str:
    """A random lease token (32 hex digits: safe to inline in SQL)."""
    return os.urandom(16).hex()


#: Tokens of the leases held by live writers of this process (any store object).
_held: set[str] = set()
_held_lock = threading.Lock()


def hold(token: str) -> None:
    with _held_lock:
        _held.add(token)


def let_go(token: str) -> None:
    with _held_lock:
        _held.discard(token)


def held_here(token: str) -> bool:
    with _held_lock:
        return token in _held


class StoredLengthConflict(StoreError):
    """The database holds a different number of results than the writer numbered
    from (e.g. a crashed PostgreSQL lost its last asynchronous commits)."""

    def __init__(self, run_id: str, stored: int) -> None:
        super().__init__(
            f"run {run_id!r}: the database holds {stored} results, not the number this "
            "writer counted; the results after those were lost by the database (a crashed "
            "server loses its last asynchronous commits) and are not in this writer's memory"
        )
        self.stored = stored


@dataclass(frozen=True)
class WriterInfo:
    """The writer a run records (all None: nobody holds it)."""

    host: str | None
    pid: int | None
    token: str | None
    started_at: float | None
    expires_at: float | None

    @property
    def who(self) -> str:
        return f"pid {self.pid} on host {self.host!r}"

    def gone_reason(self, now: float | None = None) -> str | None:
        """Why this writer no longer holds the run, or None while it does."""
        if self.token is None:
            return "nobody holds it"
        now = time.time() if now is None else now
        if self.host == this_host() and self.pid is not None:
            if self.pid == os.getpid():
                if held_here(self.token):
                    return None
                return f"its writer ({self.who}, this process) no longer writes it"
            if not pid_alive(self.pid):
                return f"its writer ({self.who}) has exited"
            return None
        if self.expires_at is not None and self.expires_at < now:
            stamp = datetime.fromtimestamp(self.expires_at, tz=UTC).strftime("%H:%M:%S UTC")
            return f"its writer ({self.who}) stopped renewing its lease at {stamp}"
        return None


@dataclass
class Lease:
    """A lease this process holds on one run."""

    run_id: str
    token: str
    #: Set (to the error the writer's next call raises) once the lease was lost.
    lost: Exception | None = None


class LeaseKeeper:
    """The store's thread that renews its writers' leases.

    Leases are registered with their owner (the run's handle); a lease whose
    owner was garbage-collected without completing the run is released, so
    another writer may resume it.  Renewal failures (a database briefly
    unreachable) are retried at the next interval; a lease found taken over
    is marked lost.
    """

    def __init__(self, timeout: float,
                 renew: Callable[[list[str], float], set[str]],
                 release: Callable[[list[str]], None],
                 name: str = "qdataset-leases") -> None:
        self.timeout = timeout
        self._renew = renew        # (tokens, expires_at) -> tokens still held
        self._release = release    # (tokens) -> None
        self._owners: dict[str, tuple[weakref.ref, Lease]] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._name = name
        self._failing = False  # renewals failing: warned once, until they work again

    def add(self, owner: Any, lease: Lease) -> None:
        hold(lease.token)
        with self._cond:
            self._owners[lease.token] = (weakref.ref(owner), lease)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease`` (its run was completed)."""
        let_go(lease.token)
        with self._cond:
            self._owners.pop(lease.token, None)

    def _run(self) -> None:
        interval = self.timeout / RENEWALS_PER_LEASE
        while True:
            with self._cond:
                self._cond.wait(interval)
                if self._closed:
                    return
                live, orphans = [], []
                for token, (ref, lease) in list(self._owners.items()):
                    if ref() is None:
                        orphans.append(lease)
                        del self._owners[token]
                    elif lease.lost is None:
                        live.append(lease)
            for lease in orphans:
                let_go(lease.token)
            try:
                if orphans:
                    self._release([lease.token for lease in orphans])
                if live:
                    held = self._renew([lease.token for lease in live],
                                       time.time() + self.timeout)
                    with self._cond:  # a run completed meanwhile dropped its lease
                        current = set(self._owners)
                    for lease in live:
                        if lease.token not in held and lease.token in current:
                            lease.lost = taken_over_error(lease.run_id, None)
                            let_go(lease.token)
                            log.error("qdataset: %s", lease.lost)
            except Exception as exc:  # noqa: BLE001 - transient: retried next interval
                if not self._failing:
                    log.warning("qdataset: could not renew writer leases (retrying every "
                                "%.1f s; a lease not renewed for %.1f s may be taken over "
                                "from another host): %s", interval, self.timeout, exc)
                self._failing = True
            else:
                if self._failing:
                    log.warning("qdataset: writer leases renewed again")
                self._failing = False

    def close(self) -> list[Lease]:
        """Stop renewing; returns the leases still held (for the store to release)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            held = [lease for _, lease in self._owners.values() if lease.lost is None]
            self._owners.clear()
            thread = self._thread
        for lease in held:
            let_go(lease.token)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        return held


def taken_over_error(run_id: str, writer: WriterInfo | None) -> WriterActiveError:
    """The error of a writer whose lease of ``run_id`` is gone; ``writer``: who holds
    the run now, if known."""
    if writer is None:
        now = "another process took it over (store.resume_dataset) or completed it"
    elif writer.token is not None:
        now = f"{writer.who} writes it now"
    else:
        now = "it was released"
    return WriterActiveError(
        f"this DataSet no longer holds the writer lease of run {run_id!r} ({now}), so "
        "nothing of it is written to the run any more. Its unwritten results are kept: "
        "ds.unwritten_results() returns them and store.close() saves them to a rescue file"
    )
