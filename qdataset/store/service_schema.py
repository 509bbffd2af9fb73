"""Tables of :class:`qdataset.experiment.ExperimentService`, on the shared MetaData.

They hold what qiskit-experiments sends to an experiment service, apart from
qdataset's own experiment tables (``experiment_schema.py``): its ids, fields
and JSON shapes are qiskit-experiments', not ours.  Migration ``0009`` creates
them; this module is the picture the code queries.

* JSON values are TEXT, never a JSON column type: the encoders qiskit-experiments
  hands over write ``NaN`` and ``Infinity``, which PostgreSQL's JSON types reject.
* Datetimes are kept as the ISO text the client sent (naive or with a zone, as
  given) beside a float ``*_at`` column (unix seconds) that orders and filters.
* Every row has an integer ``pk`` that keeps the order rows were first saved in;
  the service's ids are unique keys, so every write is an ``ON CONFLICT`` upsert.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import metadata

_ID = sa.String(255)


def _experiment_ref() -> sa.Column:
    return sa.Column("experiment_id", _ID,
                     sa.ForeignKey("qe_experiments.experiment_id", ondelete="CASCADE"),
                     nullable=False)


#: One row per qiskit-experiments ExperimentData (its ``DbExperimentData``).
qe_experiments = sa.Table(
    "qe_experiments",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment_id", _ID, nullable=False, unique=True),
    sa.Column("parent_id", _ID, nullable=True, index=True),
    sa.Column("experiment_type", sa.Text, nullable=True),
    sa.Column("backend", sa.Text, nullable=True),
    sa.Column("tags", sa.Text, nullable=True),  # JSON list
    sa.Column("job_ids", sa.Text, nullable=True),  # JSON list
    sa.Column("share_level", sa.Text, nullable=True),
    sa.Column("metadata", sa.Text, nullable=True),  # JSON object (client's encoder)
    sa.Column("figure_names", sa.Text, nullable=True),  # JSON list
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("hub", sa.Text, nullable=True),
    sa.Column("group", sa.Text, nullable=True),
    sa.Column("project", sa.Text, nullable=True),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("creation_datetime", sa.Text, nullable=True),  # ISO text
    sa.Column("start_datetime", sa.Text, nullable=True),
    sa.Column("end_datetime", sa.Text, nullable=True),
    sa.Column("updated_datetime", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),  # unix seconds
)

#: Analysis results (``DbAnalysisResultData``).
qe_analysis_results = sa.Table(
    "qe_analysis_results",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_id", _ID, nullable=False, unique=True),
    _experiment_ref(),
    sa.Column("result_type", sa.Text, nullable=True),
    sa.Column("result_data", sa.Text, nullable=True),  # JSON object (client's encoder)
    sa.Column("device_components", sa.Text, nullable=True),  # JSON list of "Q0"-style names
    sa.Column("quality", sa.String(32), nullable=True),  # "good", "bad", "unknown"
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tags", sa.Text, nullable=True),  # JSON list
    sa.Column("backend_name", sa.Text, nullable=True),
    sa.Column("chisq", sa.Text, nullable=True),  # JSON number: NaN and inf survive
    sa.Column("creation_datetime", sa.Text, nullable=True),
    sa.Column("updated_datetime", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_qe_analysis_results_experiment", "experiment_id", "pk"),
)

def _named_blobs(name: str) -> sa.Table:
    """A table of named byte strings of one experiment, unique by (experiment, name)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        _experiment_ref(),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("experiment_id", "name", name=f"uq_{name}_name"),
    )


#: Figures, byte for byte (SVG, PNG, ... as their names say).
qe_figures = _named_blobs("qe_figures")

#: Files: JSON and YAML as their UTF-8 text, zip archives (artifacts) as bytes.
qe_files = _named_blobs("qe_files")

#: Raw job results kept for offline re-analysis (qdataset's addition to the service).
qe_job_results = sa.Table(
    "qe_job_results",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", _ID, nullable=False, unique=True),
    sa.Column("experiment_id", _ID, nullable=True, index=True),  # who saved it; no FK
    sa.Column("backend_name", sa.Text, nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),  # "primitive" or "backend"
    sa.Column("result", sa.Text, nullable=False),  # JSON (qiskit-experiments' encoder)
    sa.Column("saved_at", sa.Float, nullable=False),
)

#: Every table of the service, parents first.
SERVICE_TABLES = (qe_experiments, qe_analysis_results, qe_figures, qe_files, qe_job_results)
