"""Add the jobs tables: watched jobs, notifications sent, job queue, backend configs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watched_jobs",
        sa.Column("job_id", sa.String(255), primary_key=True),
        sa.Column("notify_status", sa.Text, nullable=False),
        sa.Column("last_status", sa.String(32), nullable=True),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("backend", sa.Text, nullable=True),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "job_notifications",
        sa.Column("job_id", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(32), primary_key=True),
        sa.Column("previous", sa.String(32), nullable=True),
        sa.Column("event_time", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "job_backends",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_queue_check", sa.Float, nullable=True),
    )
    op.create_table(
        "job_queue",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False, unique=True),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("username", sa.Text, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("worker", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ix_job_queue_backend_status", "job_queue", ["backend", "status", "pk"])


def downgrade() -> None:
    op.drop_index("ix_job_queue_backend_status", table_name="job_queue")
    op.drop_table("job_queue")
    op.drop_table("job_backends")
    op.drop_table("job_notifications")
    op.drop_table("watched_jobs")
