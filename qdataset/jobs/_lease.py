"""Leases of claimed queue jobs: who holds a claim, and when it counts as lost.

A claim records the holder's host (``socket.gethostname()``), pid and a random
token, and runs out ``lease_timeout`` seconds after its last renewal.  A claim
is lost when its lease ran out, or at once when its holder ran on this host
and that pid is gone.  Both queue providers share these rules and the
:class:`LeaseRenewal` thread a worker keeps while it runs a job.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime
from typing import Any

from ..store.writers import new_token, pid_alive, this_host
from .errors import JobConfigError, LeaseLostError

__all__ = ["new_token", "pid_alive", "this_host"]  # shared with the writer leases

LOG = logging.getLogger("qdataset.jobs")

#: Seconds a claim stays valid without renewal when neither the queue nor its
#: store sets ``lease_timeout``.
DEFAULT_LEASE_TIMEOUT = 10.0

#: How many times a job is claimed before a lost claim ends it as ERROR.
DEFAULT_MAX_ATTEMPTS = 3

#: A worker renews its lease this many times per lease timeout.
RENEWALS_PER_LEASE = 3


def lease_timeout_of(explicit: float | None, store: Any = None) -> float:
    """The lease timeout: the argument, else the store's ``lease_timeout``, else 10 s."""
    value = explicit
    if value is None:
        value = getattr(store, "lease_timeout", None)
    if value is None:
        value = DEFAULT_LEASE_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise JobConfigError(
            f"lease_timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def check_max_attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobConfigError(f"max_attempts must be a positive integer, not {value!r}")
    return value


def lost_reason(host: str | None, pid: int | None, expires: float | None, now: float,
                *, here: str, alive: dict[int, bool] | None = None) -> str | None:
    """Why a claim held by ``host``:``pid`` until ``expires`` is lost, or None if held.

    ``alive``: a cache of pid checks, for looking at many claims at once.
    """
    holder = f"{host or '?'}:{pid if pid is not None else '?'}"
    if host == here and pid is not None and alive is not None and pid not in alive:
        alive[pid] = pid_alive(pid)
    if host == here and pid is not None and not (alive[pid] if alive is not None
                                                  else pid_alive(pid)):
        return f"its worker {holder} is gone"
    if expires is not None and expires < now:
        stamp = datetime.fromtimestamp(expires, tz=UTC).strftime("%H:%M:%S UTC")
        return f"the lease of worker {holder} ran out at {stamp} without renewal"
    return None


def lease_lost(job_id: str, status: str, attempts: int, operation: str) -> LeaseLostError:
    verb = {"finish": "finished", "fail": "failed", "renew": "renewed"}.get(operation,
                                                                         operation)
    return LeaseLostError(
        f"job {job_id!r} cannot be {verb} by this worker: its lease was lost (not renewed "
        f"in time, or its worker looked dead) and the job was requeued; it is now {status} "
        f"after {attempts} claim(s), and the worker holding the current claim finishes it. "
        "Drop this result; renew leases more often than lease_timeout if this repeats"
    )


class LeaseRenewal:
    """Renew ``claim``'s lease on ``queue`` from a thread until the block ends.

    ``lost`` is set when the queue refused a renewal (the claim is gone);
    other errors (a database briefly unreachable) are logged and retried at
    the next interval.

    >>> with LeaseRenewal(queue, claim) as lease:
    ...     result = run(claim.payload)
    >>> lease.lost.is_set()
    False
    """

    def __init__(self, queue: Any, claim: Any, interval: float | None = None) -> None:
        timeout = claim.lease_timeout or getattr(queue, "lease_timeout", DEFAULT_LEASE_TIMEOUT)
        self.queue = queue
        self.claim = claim
        self.interval = interval if interval is not None else timeout / RENEWALS_PER_LEASE
        self.lost = threading.Event()
        self.renewals = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseRenewal:
        if self.claim.token is not None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"qdataset-lease-{self.claim.job_id}")
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.queue.renew(self.claim)
            except LeaseLostError as exc:
                self.lost.set()
                LOG.warning("qdataset worker: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - transient: retried next interval
                LOG.warning("qdataset worker: could not renew the lease of job %s "
                            "(retrying in %.1f s): %s", self.claim.job_id, self.interval, exc)
            else:
                self.renewals += 1
