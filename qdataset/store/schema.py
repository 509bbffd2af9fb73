"""The fixed tables of a qdataset database, as SQLAlchemy Core objects.

The migrations in ``migrations/versions`` create and evolve these tables;
this module is the current picture that the code queries.  Each run also has
its own results table (``results_<pk>``), created when the run is created,
with one column per parameter and the row index as primary key.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: One row per run (DataSet).
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(255), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # unix seconds, UTC
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("length", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("results_table", sa.String(64), nullable=False),
)

#: The parameters of each run, in the order they were added.
run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # ParamSpec.to_json()
    sa.UniqueConstraint("run_pk", "name"),
)

#: Free-form metadata of each run, one JSON value per tag.
run_metadata = sa.Table(
    "run_metadata",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("tag", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
)

#: Name of the primary-key column of every results table.
INDEX_COLUMN = "_qd_index"


def results_table_name(run_pk: int) -> str:
    return f"results_{run_pk}"
