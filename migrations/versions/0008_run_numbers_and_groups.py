"""Run numbers and groups: a per-store ``number`` and optional ``experiment`` and
``sample`` names for every run, and indexes for listing runs by them (newest
first: with ``created_at``) and by metadata tag.  (``created_at`` alone has been
indexed since 0001.)

Runs written before this revision are numbered 1, 2, 3, ... in creation order
(``created_at``, then ``pk``).  The number stays nullable in the table: SQLite
cannot make an existing column NOT NULL without rebuilding ``runs``, which the
results tables' triggers refer to; qdataset gives every new run a number in the
transaction that creates it, and the unique index keeps numbers distinct.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ux_runs_number", "runs", ["number"], True),
    ("ix_runs_experiment", "runs", ["experiment", "created_at"], False),
    ("ix_runs_sample", "runs", ["sample", "created_at"], False),
    ("ix_run_metadata_tag", "run_metadata", ["tag", "run_pk"], False),
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("number", sa.BigInteger, nullable=True))
    op.add_column("runs", sa.Column("experiment", sa.Text, nullable=True))
    op.add_column("runs", sa.Column("sample", sa.Text, nullable=True))
    conn = op.get_bind()
    # One read of the keys and one executemany: the runs table is small next to the
    # results (thousands of rows), and this is the same SQL on every engine.
    pks = conn.execute(sa.text("SELECT pk FROM runs ORDER BY created_at, pk")).scalars().all()
    if pks:
        conn.execute(sa.text("UPDATE runs SET number = :number WHERE pk = :pk"),
                     [{"number": number, "pk": pk} for number, pk in enumerate(pks, start=1)])
    for name, table, columns, unique in _INDEXES:
        op.create_index(name, table, columns, unique=unique)


def downgrade() -> None:
    for name, table, _columns, _unique in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    # A plain DROP COLUMN (SQLite 3.35+), as in 0007: no rebuild of `runs`.
    for name in ("sample", "experiment", "number"):
        op.execute(f"ALTER TABLE runs DROP COLUMN {name}")
