"""Queue leases: who holds a claimed job, until when, and how often it was claimed.

A RUNNING job of ``job_queue`` carries the lease of its current claim: the
holder's host and pid, the claim token its finish/fail must present, the time
the lease runs out unless renewed, and the number of claims so far.  Jobs
claimed before this revision have no lease (NULL); a claimer treats them as
leased until ``claimed_at`` plus the lease timeout.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = ("holder_host", "holder_pid", "claim_token", "lease_expires_at", "attempts")


def upgrade() -> None:
    op.add_column("job_queue", sa.Column("holder_host", sa.String(255), nullable=True))
    op.add_column("job_queue", sa.Column("holder_pid", sa.Integer, nullable=True))
    op.add_column("job_queue", sa.Column("claim_token", sa.String(64), nullable=True))
    op.add_column("job_queue", sa.Column("lease_expires_at", sa.Float, nullable=True))
    op.add_column("job_queue", sa.Column("attempts", sa.Integer, nullable=False,
                                         server_default="0"))
    # Every job claimed before this revision was claimed once, as far as anyone knows.
    op.execute("UPDATE job_queue SET attempts = 1 WHERE claimed_at IS NOT NULL")


def downgrade() -> None:
    # Batch mode: SQLite rebuilds the table, PostgreSQL drops the columns in place.
    with op.batch_alter_table("job_queue") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
