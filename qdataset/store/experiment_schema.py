"""Tables of the experiment layer (:mod:`qdataset.experiment`), on the shared MetaData.

Migration ``0002`` creates them; this module is the picture the code queries.
Timestamps are float unix seconds, JSON values are TEXT, figures are binary.
An experiment's measured data lives in an ordinary run (``dataset_id``).
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

#: One row per experiment (an ExperimentData).
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.String(64), primary_key=True),
    sa.Column("experiment_type", sa.Text, nullable=True),
    sa.Column("parent_id", sa.String(64), nullable=True),
    sa.Column("backend_name", sa.Text, nullable=True),
    sa.Column("dataset_id", sa.String(255), nullable=True),  # runs.run_id
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),  # JSON object
    sa.Column("status", sa.String(32), nullable=True),  # last saved ExperimentStatus name
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: The experiment statuses observed over time, in order.
experiment_status_history = sa.Table(
    "experiment_status_history",
    metadata,
    sa.Column("experiment_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

#: Jobs whose results feed an experiment, with qdataset's own bookkeeping.
experiment_jobs = sa.Table(
    "experiment_jobs",
    metadata,
    sa.Column("experiment_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("job_id", sa.String(255), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("backend_name", sa.Text, nullable=True),
    sa.Column("kind", sa.String(32), nullable=True),  # "backend", "sampler", "estimator", ...
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),  # JobStatus name
    sa.Column("error_message", sa.Text, nullable=True),
)

#: Analysis callbacks and how they ended.
experiment_callbacks = sa.Table(
    "experiment_callbacks",
    metadata,
    sa.Column("experiment_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("callback_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # AnalysisStatus name
    sa.Column("error_message", sa.Text, nullable=True),
)

#: Analysis results (fitted values and the like).
analysis_results = sa.Table(
    "analysis_results",
    metadata,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=True),  # JSON
    sa.Column("quality", sa.String(32), nullable=True),
    sa.Column("chisq", sa.Float, nullable=True),
    sa.Column("extra", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Column("device_components", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: Figures: matplotlib figures are stored as SVG; raw SVG/PNG bytes as given.
experiment_figures = sa.Table(
    "experiment_figures",
    metadata,
    sa.Column("experiment_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),  # "svg" or "png"
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

#: Parent -> child experiment links, in order.
experiment_children = sa.Table(
    "experiment_children",
    metadata,
    sa.Column("parent_id", sa.String(64),
              sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("child_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

sa.Index("ix_experiments_created_at", experiments.c.created_at)
sa.Index("ix_experiments_parent_id", experiments.c.parent_id)
