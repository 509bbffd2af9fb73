"""Raw sqlite3 into qdataset's storage layout: the floor of the layout itself.

The loops of ``cases_raw.py``, unchanged, but the table is laid out as
qdataset lays out a shared results table (README, "Storage model"): the key
``(run, index)`` as a ``WITHOUT ROWID`` primary key, and the completion lock,
three triggers that look the row's run up in a runs table.  As qdataset does,
the run is a literal in the INSERT and every row carries its index.

What ``raw-layout`` costs over ``raw`` is the price of the layout in SQLite
(the B-tree keyed by two columns, one trigger call per row); what
``qdataset`` costs over ``raw-layout`` is qdataset's own code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from benchmarks.cases_raw import Table, cases_for

RUN = 1
LOCK = "the run is completed"


def lock_triggers(table: str) -> list[str]:
    """The completion lock of ``table`` as qdataset creates it on SQLite: one trigger
    per event, looking the row's run up in ``runs`` (an UPDATE on both sides)."""
    statements = []
    for op, rows in (("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])):
        completed = " OR ".join(
            f"(SELECT completed_at FROM runs WHERE pk = {row}.run) IS NOT NULL" for row in rows)
        statements.append(f"CREATE TRIGGER {table}_lock_{op.lower()} BEFORE {op} ON {table} "
                          f"WHEN {completed} BEGIN SELECT RAISE(ABORT, '{LOCK}'); END")
    return statements


class SharedLayout(Table):
    """A results table as qdataset makes one, holding run RUN."""

    name = str(RUN)
    numbered = True

    def create(self, conn: sqlite3.Connection, columns: str) -> None:
        conn.execute("CREATE TABLE runs (pk INTEGER PRIMARY KEY, completed_at REAL)")
        conn.execute("INSERT INTO runs (pk) VALUES (?)", (RUN,))
        conn.execute(f'CREATE TABLE results (run INTEGER NOT NULL, "index" INTEGER NOT NULL, '
                     f'{columns}, PRIMARY KEY (run, "index")) WITHOUT ROWID')
        for statement in lock_triggers("results"):
            conn.execute(statement)
        conn.commit()

    def insert_sql(self, names: Sequence[str]) -> str:
        return (f'INSERT INTO results (run, "index", {", ".join(names)}) '
                f"VALUES ({RUN}, {', '.join('?' * (len(names) + 1))})")

    def select_sql(self, names: Sequence[str]) -> str:
        return f'SELECT {", ".join(names)} FROM results WHERE run = {RUN} ORDER BY "index"'


CASES = cases_for(SharedLayout())
