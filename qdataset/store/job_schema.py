"""Tables of the jobs layer (watched jobs, notifications, job queue, backends).

They live on the shared :data:`qdataset.store.schema.metadata`; the migration
``0003_add_job_tables`` creates them and ``0006_queue_leases`` adds the
queue's lease columns.  Timestamps are float unix seconds (UTC)
and structured values are JSON text, so the same SQL runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

#: One row per job registered with a JobWatcher.
watched_jobs = sa.Table(
    "watched_jobs",
    metadata,
    sa.Column("job_id", sa.String(255), primary_key=True),
    sa.Column("notify_status", sa.Text, nullable=False),  # JSON list of status names
    sa.Column("last_status", sa.String(32), nullable=True),  # last status the watcher saw
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("backend", sa.Text, nullable=True),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: One row per (job, status) notification: inserting it is what makes it unique.
job_notifications = sa.Table(
    "job_notifications",
    metadata,
    sa.Column("job_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(32), primary_key=True),
    sa.Column("previous", sa.String(32), nullable=True),
    sa.Column("event_time", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(64), nullable=True),  # watcher delivering it
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("delivered_at", sa.Float, nullable=True),  # set once every notifier is done
    sa.Column("error", sa.Text, nullable=True),  # notifiers that gave up, if any
)

#: Backend configurations of the job queue (sqooler's backends/configs).
job_backends = sa.Table(
    "job_backends",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),  # JSON object
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_queue_check", sa.Float, nullable=True),  # last claim attempt
)

#: The job queue: one row per submitted job, kept after it finishes or fails.
job_queue = sa.Table(
    "job_queue",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),  # FIFO order
    sa.Column("job_id", sa.String(64), nullable=False, unique=True),
    sa.Column("backend", sa.String(255), nullable=False),
    sa.Column("username", sa.Text, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),  # JSON object
    sa.Column("result", sa.Text, nullable=True),  # JSON object
    sa.Column("worker", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    # The lease of the current claim (revision 0006): who holds it, the token its
    # finish/fail must present, until when it is valid without renewal, and how
    # many times the job has been claimed.
    sa.Column("holder_host", sa.String(255), nullable=True),
    sa.Column("holder_pid", sa.Integer, nullable=True),
    sa.Column("claim_token", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_job_queue_backend_status", "backend", "status", "pk"),
)
