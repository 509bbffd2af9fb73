"""Alembic environment: qdataset passes its own connection; the CLI passes -x url=."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///lab.db upgrade head")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
