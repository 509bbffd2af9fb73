"""Add the experiment service tables: what qiskit-experiments saves through
``qdataset.experiment.ExperimentService`` (experiments, analysis results,
figures, files) and the raw job results qdataset keeps beside them.

JSON is TEXT (the client's encoders write NaN and Infinity); each table has an
integer ``pk`` for saved order and a unique id the service upserts on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.String(255)


def _pk() -> sa.Column:
    return sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True)


def _experiment_ref() -> sa.Column:
    return sa.Column("experiment_id", _ID,
                     sa.ForeignKey("qe_experiments.experiment_id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "qe_experiments",
        _pk(),
        sa.Column("experiment_id", _ID, nullable=False, unique=True),
        sa.Column("parent_id", _ID, nullable=True),
        sa.Column("experiment_type", sa.Text, nullable=True),
        sa.Column("backend", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=True),
        sa.Column("job_ids", sa.Text, nullable=True),
        sa.Column("share_level", sa.Text, nullable=True),
        sa.Column("metadata", sa.Text, nullable=True),
        sa.Column("figure_names", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("hub", sa.Text, nullable=True),
        sa.Column("group", sa.Text, nullable=True),
        sa.Column("project", sa.Text, nullable=True),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("creation_datetime", sa.Text, nullable=True),
        sa.Column("start_datetime", sa.Text, nullable=True),
        sa.Column("end_datetime", sa.Text, nullable=True),
        sa.Column("updated_datetime", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_qe_experiments_parent_id", "qe_experiments", ["parent_id"])
    op.create_index("ix_qe_experiments_created_at", "qe_experiments", ["created_at"])
    op.create_table(
        "qe_analysis_results",
        _pk(),
        sa.Column("result_id", _ID, nullable=False, unique=True),
        _experiment_ref(),
        sa.Column("result_type", sa.Text, nullable=True),
        sa.Column("result_data", sa.Text, nullable=True),
        sa.Column("device_components", sa.Text, nullable=True),
        sa.Column("quality", sa.String(32), nullable=True),
        sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tags", sa.Text, nullable=True),
        sa.Column("backend_name", sa.Text, nullable=True),
        sa.Column("chisq", sa.Text, nullable=True),
        sa.Column("creation_datetime", sa.Text, nullable=True),
        sa.Column("updated_datetime", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_qe_analysis_results_experiment", "qe_analysis_results",
                    ["experiment_id", "pk"])
    for name in ("qe_figures", "qe_files"):
        op.create_table(
            name,
            _pk(),
            _experiment_ref(),
            sa.Column("name", sa.String(512), nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.UniqueConstraint("experiment_id", "name", name=f"uq_{name}_name"),
        )
    op.create_table(
        "qe_job_results",
        _pk(),
        sa.Column("job_id", _ID, nullable=False, unique=True),
        sa.Column("experiment_id", _ID, nullable=True),
        sa.Column("backend_name", sa.Text, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("saved_at", sa.Float, nullable=False),
    )
    op.create_index("ix_qe_job_results_experiment_id", "qe_job_results", ["experiment_id"])


def downgrade() -> None:
    for name in ("qe_job_results", "qe_files", "qe_figures", "qe_analysis_results",
                 "qe_experiments"):
        op.drop_table(name)
