"""Give the PostgreSQL completion lock its own SQLSTATE, so a rejected write is
recognised by its error code rather than by its message text.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Written out here (not imported) so this revision stays what it was when it
# shipped; qdataset.store.dialect.LOCK_SQLSTATE holds the same code.
_LOCK_SQLSTATE = "QD001"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION qdataset_reject_write() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'qdataset: this run is completed; its results are "
            f"read-only' USING ERRCODE = '{_LOCK_SQLSTATE}'; END $$ LANGUAGE plpgsql"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION qdataset_reject_write() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'qdataset: this run is completed; its results are "
            "read-only'; END $$ LANGUAGE plpgsql"
        )
