"""Create the core tables: runs, run_params, run_metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(255), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float, nullable=True),
        sa.Column("length", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("results_table", sa.String(64), nullable=False),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_table(
        "run_params",
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.UniqueConstraint("run_pk", "name"),
    )
    op.create_table(
        "run_metadata",
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The completion lock: per-run triggers call this when a run is completed.
        op.execute(
            "CREATE OR REPLACE FUNCTION qdataset_reject_write() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'qdataset: this run is completed; its results are "
            "read-only'; END $$ LANGUAGE plpgsql"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS qdataset_reject_write() CASCADE")
    op.drop_table("run_metadata")
    op.drop_table("run_params")
    op.drop_table("runs")
