"""Fault injection through SQLAlchemy's public engine events (no private attributes).

``failing_writes(store, n)`` makes the next ``n`` write transactions on the
store's engine fail the way a driver does when the disk or server gives out:
with the DBAPI's own ``OperationalError``, raised as the transaction begins.
Reads (autocommit connections) and the store's writer-lease renewals are left
alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


class WriteFaults:
    def __init__(self, remaining: int, message: str) -> None:
        self.remaining = remaining
        self.message = message
        self.raised = 0
        self.lock = threading.Lock()


@contextmanager
def failing_writes(store, count: int = 1,
                   message: str = "disk I/O error (simulated)") -> Iterator[WriteFaults]:
    faults = WriteFaults(count, message)
    error_type = store.engine.dialect.dbapi.OperationalError

    def on_begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT" or options.get("qdataset_lease"):
            return  # reads, and the writer-lease bookkeeping, are left alone
        with faults.lock:
            if faults.remaining <= 0:
                return
            faults.remaining -= 1
            faults.raised += 1
        raise error_type(faults.message)

    sa.event.listen(store.engine, "begin", on_begin)
    try:
        yield faults
    finally:
        sa.event.remove(store.engine, "begin", on_begin)


@contextmanager
def failing_write_number(store, number: int,
                         message: str = "disk full (simulated)") -> Iterator[list[int]]:
    """Make the ``number``-th write transaction from now on fail (the ones before it
    succeed); yields the list counting write transactions begun."""
    begun: list[int] = []
    error_type = store.engine.dialect.dbapi.OperationalError

    def on_begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT" or options.get("qdataset_lease"):
            return
        begun.append(1)
        if len(begun) == number:
            raise error_type(message)

    sa.event.listen(store.engine, "begin", on_begin)
    try:
        yield begun
    finally:
        sa.event.remove(store.engine, "begin", on_begin)
