"""Add the experiment layer tables: experiments, jobs, results, figures, children.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _experiment_fk(name: str = "experiment_id", **kw) -> sa.Column:
    return sa.Column(name, sa.String(64),
                     sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"), **kw)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(64), primary_key=True),
        sa.Column("experiment_type", sa.Text, nullable=True),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("backend_name", sa.Text, nullable=True),
        sa.Column("dataset_id", sa.String(255), nullable=True),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_experiments_created_at", "experiments", ["created_at"])
    op.create_index("ix_experiments_parent_id", "experiments", ["parent_id"])
    op.create_table(
        "experiment_status_history",
        _experiment_fk(primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "experiment_jobs",
        _experiment_fk(primary_key=True),
        sa.Column("job_id", sa.String(255), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("backend_name", sa.Text, nullable=True),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
    )
    op.create_table(
        "experiment_callbacks",
        _experiment_fk(primary_key=True),
        sa.Column("callback_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
    )
    op.create_table(
        "analysis_results",
        sa.Column("result_id", sa.String(64), primary_key=True),
        _experiment_fk(nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("quality", sa.String(32), nullable=True),
        sa.Column("chisq", sa.Float, nullable=True),
        sa.Column("extra", sa.Text, nullable=False, server_default="{}"),
        sa.Column("device_components", sa.Text, nullable=False, server_default="[]"),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_analysis_results_experiment_id", "analysis_results", ["experiment_id"])
    op.create_table(
        "experiment_figures",
        _experiment_fk(primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "experiment_children",
        _experiment_fk("parent_id", primary_key=True),
        sa.Column("child_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("experiment_children")
    op.drop_table("experiment_figures")
    op.drop_index("ix_analysis_results_experiment_id", table_name="analysis_results")
    op.drop_table("analysis_results")
    op.drop_table("experiment_callbacks")
    op.drop_table("experiment_jobs")
    op.drop_table("experiment_status_history")
    op.drop_index("ix_experiments_parent_id", table_name="experiments")
    op.drop_index("ix_experiments_created_at", table_name="experiments")
    op.drop_table("experiments")
