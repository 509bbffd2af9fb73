"""The fixed tables of a qdataset database, as SQLAlchemy Core objects.

The migrations in ``migrations/versions`` create and evolve these tables;
this module is the current picture that the code queries.  Results live in
shared tables (``results_l<k>``, see layouts.py), registered in
``results_tables`` and ``results_columns``; each parameter record says which
table and column hold the parameter's values.
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
    # The writer's lease (writers.py): every write presents writer_token.
    sa.Column("writer_host", sa.String(255), nullable=True),
    sa.Column("writer_pid", sa.Integer, nullable=True),
    sa.Column("writer_token", sa.String(64), nullable=True),
    sa.Column("writer_started_at", sa.Float, nullable=True),
    sa.Column("writer_expires_at", sa.Float, nullable=True),
    # Per-store run number (1, 2, 3, ...; an imported QCoDeS run keeps its
    # captured_run_id when free), and optional groups (migration 0008).  The number
    # is given by create_run in the creating transaction; NULL only in theory
    # (SQLite cannot add NOT NULL to an existing column without rebuilding `runs`).
    sa.Column("number", sa.BigInteger, nullable=True),
    sa.Column("experiment", sa.Text, nullable=True),
    sa.Column("sample", sa.Text, nullable=True),
    sa.Index("ux_runs_number", "number", unique=True),
    sa.Index("ix_runs_created_at", "created_at"),  # since 0001
    sa.Index("ix_runs_experiment", "experiment", "created_at"),
    sa.Index("ix_runs_sample", "sample", "created_at"),
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
    sa.Column("column_name", sa.Text, nullable=True),  # its column in the run's results table
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
    sa.Index("ix_run_metadata_tag", "tag", "run_pk"),  # runs(metadata=...), failed runs
)

#: The shared results tables: one per layout, named ``results_l<pk>``.
results_tables = sa.Table(
    "results_tables",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("width", sa.Integer, nullable=False),  # parameter columns
)

#: The parameter columns of each results table: which (name, storage) each holds.
results_columns = sa.Table(
    "results_columns",
    metadata,
    sa.Column("table_pk", sa.Integer,
              sa.ForeignKey("results_tables.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("column_name", sa.Text, primary_key=True),
    sa.Column("param_key", sa.Text, nullable=False),  # parameter name, casefolded
    sa.Column("storage", sa.String(8), nullable=False),  # dialect.storage_of
    sa.Index("ix_results_columns_key", "param_key", "storage"),
)


def results_table_name(table_pk: int) -> str:
    return f"results_l{table_pk}"
