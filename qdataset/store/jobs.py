"""SQL of the jobs layer: the job watcher's records and the job queue.

:class:`WatchStorage` and :class:`QueueStorage` take a :class:`~qdataset.Store`
and speak SQLAlchemy Core only.  Writes run in
one transaction each (on SQLite ``BEGIN IMMEDIATE``, which also serialises
concurrent claimers); reads use lock-free AUTOCOMMIT connections.

No code here asks which engine it runs on.  The one engine difference, how
concurrent claimers of the queue avoid each other, is the engine interface's
``Dialect.lock_for_claim``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, nothing
on SQLite, whose ``BEGIN IMMEDIATE`` already serialises the claim.
Notifications are made unique by a compare-and-set on the job's row (see
:meth:`WatchStorage.record_status`), which needs no engine-specific "insert or
ignore".  Queue leases use the same pattern: requeueing a lost job, renewing
a lease and finishing a job each update the row only while it still carries
the claim token they saw, so of two racing parties exactly one succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from .dialect import Dialect
from .job_schema import job_backends, job_notifications, job_queue, watched_jobs


# -- job watcher ---------------------------------------------------------------------
@dataclass(frozen=True)
class WatchRow:
    """One registered job."""

    job_id: str
    notify_status: list[str]
    last_status: str | None
    label: str | None
    backend: str | None
    registered_at: float
    updated_at: float
    notified: list[str]


@dataclass(frozen=True)
class NotificationRow:
    """One (job, status) notification; delivered once ``delivered_at`` is set."""

    job_id: str
    status: str
    previous: str | None
    event_time: float


class WatchStorage:
    """All SQL about watched jobs and their notifications."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def register(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        """Insert jobs, or replace the statuses of jobs already registered.

        A re-registered job keeps its last seen status and notifications, so
        registering it again after a restart sends nothing twice.
        """
        t = watched_jobs
        with self.store.transaction() as conn:
            for row in rows:
                values = {"notify_status": json.dumps(row["notify_status"]), "updated_at": now}
                if row.get("backend") is not None:
                    values["backend"] = row["backend"]
                if row.get("label") is not None:
                    values["label"] = row["label"]
                done = conn.execute(t.update().where(t.c.job_id == row["job_id"]).values(values))
                if done.rowcount == 0:
                    conn.execute(t.insert().values(job_id=row["job_id"], registered_at=now,
                                                   last_status=None, **values))

    def jobs(self, job_ids: Iterable[str] | None = None) -> list[WatchRow]:
        """Registered jobs (all of them, or those in ``job_ids``), oldest first."""
        t, n = watched_jobs, job_notifications
        query = sa.select(t).order_by(t.c.registered_at, t.c.job_id)
        sent = sa.select(n.c.job_id, n.c.status).order_by(n.c.event_time)
        if job_ids is not None:
            ids = list(job_ids)
            query = query.where(t.c.job_id.in_(ids))
            sent = sent.where(n.c.job_id.in_(ids))
        with self.store.reading() as conn:
            rows = conn.execute(query).all()
            notified: dict[str, list[str]] = {}
            for job_id, status in conn.execute(sent):
                notified.setdefault(job_id, []).append(status)
        return [WatchRow(r.job_id, json.loads(r.notify_status), r.last_status, r.label,
                         r.backend, r.registered_at, r.updated_at, notified.get(r.job_id, []))
                for r in rows]

    def update(self, job_id: str, values: dict[str, Any], now: float) -> bool:
        """Change ``notify_status`` and/or ``label`` of one job; False if it is unknown."""
        t = watched_jobs
        values = dict(values)
        if "notify_status" in values:
            values["notify_status"] = json.dumps(values["notify_status"])
        with self.store.transaction() as conn:
            done = conn.execute(t.update().where(t.c.job_id == job_id)
                                .values(updated_at=now, **values))
        return done.rowcount == 1

    def delete(self, job_ids: Sequence[str] | None) -> int:
        """Forget jobs and their notification history (all jobs when ``None``)."""
        t, n = watched_jobs, job_notifications
        with self.store.transaction() as conn:
            if job_ids is None:
                conn.execute(n.delete())
                return conn.execute(t.delete()).rowcount
            conn.execute(n.delete().where(n.c.job_id.in_(list(job_ids))))
            return conn.execute(t.delete().where(t.c.job_id.in_(list(job_ids)))).rowcount

    def record_status(
        self,
        job_id: str,
        status: str,
        entered: Callable[[str | None, list[str], str], list[str]],
        token: str,
        now: float,
    ) -> list[NotificationRow]:
        """Store the status just seen; create notifications for the statuses entered.

        ``entered(previous, notify_status, status)`` names the watched statuses
        the job entered.  Each (job, status) notification row is created at most
        once, ever; the rows created here are returned, claimed by ``token``.
        """
        t, n = watched_jobs, job_notifications
        created: list[NotificationRow] = []
        with self.store.transaction() as conn:
            row = conn.execute(sa.select(t.c.last_status, t.c.notify_status)
                               .where(t.c.job_id == job_id)).first()
            if row is None or row.last_status == status:
                return created
            previous = row.last_status
            # Compare-and-set: of watchers that saw the same change concurrently, only
            # the first updates the row; the others (blocked on its row lock, then
            # matching nothing) create no notification.
            moved = conn.execute(t.update().where(t.c.job_id == job_id,
                                                  t.c.last_status.is_not_distinct_from(previous))
                                 .values(last_status=status))
            if moved.rowcount != 1:
                return created
            wanted = entered(previous, json.loads(row.notify_status), status)
            if not wanted:
                return created
            # A status entered once before (e.g. RUNNING again after a re-queue) keeps
            # its one notification.  The job row is locked by the update above, so no
            # other transaction can insert these rows meanwhile.
            existing = set(conn.execute(sa.select(n.c.status).where(
                n.c.job_id == job_id, n.c.status.in_(wanted))).scalars())
            for name in wanted:
                if name in existing:
                    continue
                conn.execute(n.insert().values(job_id=job_id, status=name, previous=previous,
                                               event_time=now, claimed_by=token,
                                               claimed_at=now))
                created.append(NotificationRow(job_id, name, previous, now))
        return created

    def claim_undelivered(self, token: str, stale_before: float, now: float
                          ) -> list[NotificationRow]:
        """Take over notifications nobody is delivering (unclaimed, or claimed long ago)."""
        n = job_notifications
        free = sa.and_(n.c.delivered_at.is_(None),
                       sa.or_(n.c.claimed_by.is_(None), n.c.claimed_at < stale_before))
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(n.c.job_id, n.c.status, n.c.previous, n.c.event_time)
                                .where(free).order_by(n.c.event_time)).all()
            claimed = []
            for r in rows:
                done = conn.execute(n.update().where(n.c.job_id == r.job_id,
                                                     n.c.status == r.status, free)
                                    .values(claimed_by=token, claimed_at=now))
                if done.rowcount == 1:
                    claimed.append(NotificationRow(r.job_id, r.status, r.previous, r.event_time))
        return claimed

    def renew_claims(self, token: str, now: float) -> None:
        """Keep this watcher's undelivered notifications from looking abandoned."""
        n = job_notifications
        with self.store.transaction() as conn:
            conn.execute(n.update().where(n.c.claimed_by == token, n.c.delivered_at.is_(None))
                         .values(claimed_at=now))

    def mark_delivered(self, job_id: str, status: str, error: str | None, now: float) -> None:
        n = job_notifications
        with self.store.transaction() as conn:
            conn.execute(n.update().where(n.c.job_id == job_id, n.c.status == status)
                         .values(delivered_at=now, error=error))

    def release(self, token: str, keys: Iterable[tuple[str, str]] | None = None) -> None:
        """Hand this watcher's undelivered notifications to the next watcher.

        ``keys``: only these (job id, status) notifications; None: all of them.
        A notification still being sent must not be released (it would be sent twice).
        """
        n = job_notifications
        mine = sa.and_(n.c.claimed_by == token, n.c.delivered_at.is_(None))
        with self.store.transaction() as conn:
            if keys is None:
                conn.execute(n.update().where(mine).values(claimed_by=None, claimed_at=None))
                return
            for job_id, status in keys:
                conn.execute(n.update().where(mine, n.c.job_id == job_id, n.c.status == status)
                             .values(claimed_by=None, claimed_at=None))

    def notifications(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Notification rows as dicts (for inspection and tests)."""
        n = job_notifications
        query = sa.select(n).order_by(n.c.event_time, n.c.job_id)
        if job_id is not None:
            query = query.where(n.c.job_id == job_id)
        with self.store.reading() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


# -- job queue -------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueRow:
    """One job of the queue, as stored."""

    job_id: str
    backend: str
    username: str | None
    status: str
    detail: str
    error_message: str | None
    payload: str
    result: str | None
    created_at: float
    claimed_at: float | None
    finished_at: float | None
    worker: str | None = None
    holder_host: str | None = None
    holder_pid: int | None = None
    claim_token: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0


def _lease_row(r: Any) -> QueueRow:
    """The lease fields of a job (what deciding whether its claim is lost needs)."""
    return QueueRow(r.job_id, r.backend, None, "RUNNING", "", None, "", None, 0.0,
                    r.claimed_at, None, None, r.holder_host, r.holder_pid, r.claim_token,
                    r.lease_expires_at, int(r.attempts or 0))


def _queue_row(r: Any) -> QueueRow:
    return QueueRow(r.job_id, r.backend, r.username, r.status, r.detail, r.error_message,
                    r.payload, r.result, r.created_at, r.claimed_at, r.finished_at,
                    r.worker, r.holder_host, r.holder_pid, r.claim_token, r.lease_expires_at,
                    int(r.attempts or 0))


@dataclass(frozen=True)
class Claim:
    """Who claims a job: written into the job's row as its lease."""

    worker: str | None
    host: str
    pid: int
    token: str


#: ``lost(row, now)``: why the lease of a RUNNING job is lost, or None if it is held.
LostCheck = Callable[[QueueRow, float], "str | None"]


class QueueStorage:
    """All SQL about the job queue and the backend configurations."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._dialect = Dialect.of(store.engine)

    # backends
    def put_config(self, name: str, config: str, now: float) -> None:
        b = job_backends
        with self.store.transaction() as conn:
            done = conn.execute(b.update().where(b.c.name == name)
                                .values(config=config, updated_at=now))
            if done.rowcount == 0:
                conn.execute(b.insert().values(name=name, config=config, updated_at=now))

    def get_config(self, name: str) -> str | None:
        with self.store.reading() as conn:
            return conn.execute(sa.select(job_backends.c.config)
                                .where(job_backends.c.name == name)).scalar()

    def backends(self) -> list[str]:
        with self.store.reading() as conn:
            return list(conn.execute(sa.select(job_backends.c.name)
                                     .order_by(job_backends.c.name)).scalars())

    def backend_state(self, name: str) -> tuple[str, float | None, int] | None:
        """(config, last queue check, number of queued jobs), or None if unknown."""
        q = job_queue
        with self.store.reading() as conn:
            row = conn.execute(sa.select(job_backends.c.config, job_backends.c.last_queue_check)
                               .where(job_backends.c.name == name)).first()
            if row is None:
                return None
            pending = conn.execute(sa.select(sa.func.count()).select_from(q)
                                   .where(q.c.backend == name, q.c.status == "QUEUED")).scalar()
        return row.config, row.last_queue_check, int(pending or 0)

    # jobs
    def insert_job(self, job_id: str, backend: str, username: str | None, payload: str,
                   now: float) -> bool:
        """Queue a job; False (and nothing written) when the backend has no config."""
        with self.store.transaction() as conn:
            known = conn.execute(sa.select(job_backends.c.name)
                                 .where(job_backends.c.name == backend)).first()
            if known is None:
                return False
            conn.execute(job_queue.insert().values(
                job_id=job_id, backend=backend, username=username, status="QUEUED",
                detail="Waiting for a worker.", payload=payload, created_at=now, attempts=0))
        return True

    def get_job(self, job_id: str) -> QueueRow | None:
        with self.store.reading() as conn:
            row = conn.execute(sa.select(job_queue).where(job_queue.c.job_id == job_id)).first()
        return None if row is None else _queue_row(row)

    def job_ids(self, backend: str | None = None, status: str | None = None) -> list[str]:
        q = job_queue
        query = sa.select(q.c.job_id).order_by(q.c.pk)
        if backend is not None:
            query = query.where(q.c.backend == backend)
        if status is not None:
            query = query.where(q.c.status == status)
        with self.store.reading() as conn:
            return list(conn.execute(query).scalars())

    def claim_next(self, backend: str, claim: Claim, now: float, *, lease_timeout: float,
                   max_attempts: int, lost: LostCheck) -> QueueRow | None:
        """Move the oldest QUEUED job of ``backend`` to RUNNING under ``claim``'s lease.

        Exactly one caller gets each job.  RUNNING jobs of ``backend`` whose lease
        is lost (``lost``) are requeued first, in the same transaction, or end as
        ERROR once they were claimed ``max_attempts`` times.
        """
        q = job_queue
        with self.store.transaction() as conn:
            conn.execute(job_backends.update().where(job_backends.c.name == backend)
                         .values(last_queue_check=now))
            self._requeue_lost(conn, backend, claim, now, lease_timeout, max_attempts, lost)
            while True:
                query = self._dialect.lock_for_claim(
                    sa.select(q).where(q.c.backend == backend, q.c.status == "QUEUED")
                    .order_by(q.c.pk).limit(1))
                row = conn.execute(query).first()
                if row is None:
                    return None
                values = {"status": "RUNNING", "detail": "Claimed by a worker.",
                          "worker": claim.worker, "claimed_at": now,
                          "holder_host": claim.host, "holder_pid": claim.pid,
                          "claim_token": claim.token, "lease_expires_at": now + lease_timeout}
                done = conn.execute(
                    q.update().where(q.c.pk == row.pk, q.c.status == "QUEUED")
                    .values(attempts=q.c.attempts + 1, **values))
                if done.rowcount == 1:
                    return replace(_queue_row(row), attempts=int(row.attempts or 0) + 1,
                                   **values)

    def requeue_lost(self, backend: str, claim: Claim, now: float, *, lease_timeout: float,
                     max_attempts: int, lost: LostCheck) -> list[QueueRow]:
        """Requeue (or end) the RUNNING jobs of ``backend`` whose lease is lost, as seen
        by ``claim`` (its host and pid; its token is not used)."""
        with self.store.transaction() as conn:
            return self._requeue_lost(conn, backend, claim, now, lease_timeout, max_attempts,
                                      lost)

    def _requeue_lost(self, conn: sa.Connection, backend: str, claim: Claim, now: float,
                      lease_timeout: float, max_attempts: int, lost: LostCheck
                      ) -> list[QueueRow]:
        q = job_queue
        # Candidates: leases run out (or jobs claimed before leases existed, which
        # count from claimed_at), and claims of other processes on this host (their
        # pid may be gone).  Looked at without locking and without the payloads;
        # then only the claims found lost are locked (skipping any another claimer is
        # requeueing right now) and checked again.
        expired = sa.or_(q.c.lease_expires_at < now,
                         sa.and_(q.c.lease_expires_at.is_(None),
                                 q.c.claimed_at < now - lease_timeout),
                         sa.and_(q.c.holder_host == claim.host, q.c.holder_pid != claim.pid))
        lease_columns = (q.c.pk, q.c.job_id, q.c.backend, q.c.claimed_at, q.c.holder_host,
                         q.c.holder_pid, q.c.claim_token, q.c.lease_expires_at, q.c.attempts)
        seen = conn.execute(sa.select(*lease_columns).where(
            q.c.backend == backend, q.c.status == "RUNNING", expired)).all()
        suspects = [r.pk for r in seen if lost(_lease_row(r), now) is not None]
        if not suspects:
            return []
        rows = conn.execute(self._dialect.lock_for_claim(
            sa.select(q).where(q.c.pk.in_(suspects), q.c.status == "RUNNING")
            .order_by(q.c.pk))).all()
        moved = []
        for r in rows:
            row = _queue_row(r)
            reason = lost(row, now)
            if reason is None:
                continue
            lease = {"holder_host": None, "holder_pid": None, "claim_token": None,
                     "lease_expires_at": None}
            if row.attempts >= max_attempts:
                values = {"status": "ERROR", "detail": "Failed.", "finished_at": now,
                          "error_message": (
                              f"worker lost {row.attempts} times (last: {reason}); "
                              f"a job is tried at most {max_attempts} times")}
            else:
                values = {"status": "QUEUED", "detail": f"Requeued: {reason}.",
                          "claimed_at": None}
            done = conn.execute(q.update().where(
                q.c.pk == r.pk, q.c.status == "RUNNING",
                q.c.claim_token.is_not_distinct_from(row.claim_token))
                .values(**lease, **values))
            if done.rowcount == 1:
                moved.append(replace(row, **lease, **values))
        return moved

    def renew(self, job_id: str, token: str, now: float, lease_timeout: float) -> bool:
        """Extend the lease of the claim ``token`` holds; False if that claim is gone."""
        q = job_queue
        with self.store.transaction() as conn:
            done = conn.execute(q.update().where(q.c.job_id == job_id, q.c.status == "RUNNING",
                                                 q.c.claim_token == token)
                                .values(lease_expires_at=now + lease_timeout))
        return done.rowcount == 1

    def transition(self, job_id: str, allowed_from: Sequence[str], status: str, *, detail: str,
                   now: float, token: str | None = None, error_message: str | None = None,
                   result: str | None = None) -> QueueRow | None:
        """Move a job to ``status`` if it is in one of ``allowed_from``.

        A RUNNING job under a lease moves only for the holder of its claim
        (``token``).  Returns None on success, else the job as it is now (None
        fields but ``status == ""`` if it is unknown).
        """
        q = job_queue
        values: dict[str, Any] = {"status": status, "detail": detail,
                                  "error_message": error_message}
        if result is not None:
            values["result"] = result
        if status in ("DONE", "ERROR", "CANCELLED"):
            values["finished_at"] = now
        holder = sa.or_(q.c.status != "RUNNING", q.c.claim_token.is_(None))
        if token is not None:
            holder = sa.or_(holder, q.c.claim_token == token)
        with self.store.transaction() as conn:
            done = conn.execute(q.update().where(q.c.job_id == job_id,
                                                 q.c.status.in_(list(allowed_from)), holder)
                                .values(values))
            if done.rowcount == 1:
                return None
            current = conn.execute(sa.select(q).where(q.c.job_id == job_id)).first()
        if current is None:
            return QueueRow(job_id, "", None, "", "", None, "", None, 0.0, None, None)
        return _queue_row(current)
