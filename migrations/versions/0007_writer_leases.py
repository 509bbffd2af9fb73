"""Writer leases: which process writes each run, and until when its claim holds.

An incomplete run records its writer: host (``socket.gethostname()``), pid,
a random token that every write of that writer must present, when it started
writing and when its lease runs out unless renewed.  Runs written before this
revision have no writer recorded (NULL): nobody holds them, so
``store.resume_dataset(id)`` may continue them at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = ("writer_host", "writer_pid", "writer_token", "writer_started_at",
            "writer_expires_at")


def upgrade() -> None:
    op.add_column("runs", sa.Column("writer_host", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("writer_pid", sa.Integer, nullable=True))
    op.add_column("runs", sa.Column("writer_token", sa.String(64), nullable=True))
    op.add_column("runs", sa.Column("writer_started_at", sa.Float, nullable=True))
    op.add_column("runs", sa.Column("writer_expires_at", sa.Float, nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): rebuilding `runs` in batch mode would break
    # the results tables' triggers, which refer to it.
    for name in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE runs DROP COLUMN {name}")
