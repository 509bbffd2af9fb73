"""Who may write a run, decided inside the transaction that writes it.

The writer lease of a run (writers.py) lives in its ``runs`` row.  These
functions read and change it on a connection the caller holds in a write
transaction (runs.py), so the check and the write it guards commit together:
a handle whose lease was taken over can never write, however stale its view.
They also say, in errors that name the writer, why a handle may not write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import sqlalchemy as sa

from ..errors import CompletedError, WriterActiveError
from .schema import runs
from .writers import StoredLengthConflict, WriterInfo, taken_over_error, this_host

if TYPE_CHECKING:
    from .runs import RunRow


class WriterState(NamedTuple):
    """A run's length, completion and writer, as one read."""

    length: int
    completed_at: float | None
    writer: WriterInfo


def writer_state(conn: sa.Connection, pk: int) -> WriterState:
    row = conn.execute(
        sa.select(runs.c.length, runs.c.completed_at, runs.c.writer_host, runs.c.writer_pid,
                  runs.c.writer_token, runs.c.writer_started_at, runs.c.writer_expires_at)
        .where(runs.c.pk == pk)
    ).one()
    return WriterState(int(row.length), row.completed_at, WriterInfo(
        row.writer_host, row.writer_pid, row.writer_token, row.writer_started_at,
        row.writer_expires_at))


def check_writer(conn: sa.Connection, run: RunRow) -> None:
    """Refuse a change to ``run`` unless this handle holds its lease (on PostgreSQL
    the update also locks the run's row against a concurrent takeover)."""
    held = conn.execute(
        runs.update()
        .where(runs.c.pk == run.pk, runs.c.completed_at.is_(None),
               runs.c.writer_token == run.token)
        .values(writer_token=runs.c.writer_token)
    ).rowcount if run.token is not None else 0
    if held != 1:
        refuse(conn, run)


def refuse(conn: sa.Connection, run: RunRow, new_length: int | None = None) -> None:
    """Raise why ``run`` may not be written by this handle.  Returns only when an
    append ending at ``new_length`` is already stored (a retried batch whose commit
    went through although its acknowledgement was lost)."""
    state = writer_state(conn, run.pk)
    if state.completed_at is not None:
        raise CompletedError(
            f"run {run.run_id!r} is completed, so its results and parameters are "
            "read-only; create a new DataSet for new data"
        )
    if run.token is None:
        raise view_write(run.run_id, state.writer)
    if state.writer.token != run.token:
        raise taken_over_error(run.run_id, state.writer)
    if new_length is not None and state.length == new_length:
        return
    raise StoredLengthConflict(run.run_id, state.length)


def complete(conn: sa.Connection, run: RunRow, completed_at: float) -> tuple[float, bool]:
    """Complete ``run`` (its writer, or anyone once the writer is gone); returns the
    completion time and whether this call completed it."""
    state = writer_state(conn, run.pk)
    if state.completed_at is not None:
        return state.completed_at, False
    if run.token is None or state.writer.token != run.token:
        if run.token is not None:
            raise taken_over_error(run.run_id, state.writer)
        if state.writer.gone_reason() is None:
            raise writer_alive(run.run_id, state.writer, "completed")
    # The results tables' triggers reject changes to rows of runs completed here.
    if not _swap(conn, run.pk, state.writer.token, completed_at=completed_at,
                 writer_token=None, writer_expires_at=None):
        raise WriterActiveError(
            f"run {run.run_id!r} changed hands while it was being completed; "
            "read its state again (store.read_dataset(id)) and retry"
        )
    return completed_at, True


def _swap(conn: sa.Connection, pk: int, observed_token: str | None, **values: object) -> bool:
    """Set ``values`` on the incomplete run ``pk`` if its writer token is still the
    one read before (compare-and-set); False if another handle acted in between."""
    return conn.execute(
        runs.update()
        .where(runs.c.pk == pk, runs.c.completed_at.is_(None),
               runs.c.writer_token.is_not_distinct_from(observed_token))
        .values(**values)
    ).rowcount == 1


def take_over(conn: sa.Connection, run: RunRow, token: str, expires_at: float) -> int:
    """Make ``token`` the lease of the incomplete run ``run`` whose writer is gone;
    returns the run's stored length."""
    state = writer_state(conn, run.pk)
    if state.completed_at is not None:
        raise CompletedError(
            f"run {run.run_id!r} is completed, so it cannot be resumed; "
            "create a new DataSet for new data"
        )
    if state.writer.gone_reason() is None:
        raise writer_alive(run.run_id, state.writer, "resumed")
    if not _swap(conn, run.pk, state.writer.token, writer_host=this_host(),
                 writer_pid=os.getpid(), writer_token=token, writer_started_at=time.time(),
                 writer_expires_at=expires_at):
        raise WriterActiveError(
            f"run {run.run_id!r} was resumed by another process at the same moment; "
            "read it with store.read_dataset(id)"
        )
    # Read the length again: on PostgreSQL the update may have waited for the old
    # writer's last flush, which committed rows after the read above; the run's
    # row is ours now, so nothing changes it any more.
    return int(conn.execute(sa.select(runs.c.length).where(runs.c.pk == run.pk)).scalar_one())


def renew(conn: sa.Connection, tokens: Sequence[str], expires_at: float) -> set[str]:
    """Extend the leases ``tokens``; returns those still held."""
    held = sa.and_(runs.c.writer_token.in_(list(tokens)), runs.c.completed_at.is_(None))
    conn.execute(runs.update().where(held).values(writer_expires_at=expires_at))
    return set(conn.execute(sa.select(runs.c.writer_token).where(held)).scalars())


def release(conn: sa.Connection, tokens: Sequence[str]) -> None:
    """Give up the leases ``tokens``: their runs may be resumed at once."""
    conn.execute(runs.update().where(runs.c.writer_token.in_(list(tokens)))
                 .values(writer_token=None, writer_expires_at=time.time()))


def view_refusal(conn: sa.Connection, run: RunRow) -> Exception:
    """Why a view of ``run`` may not write it: CompletedError or WriterActiveError."""
    state = writer_state(conn, run.pk)
    if state.completed_at is not None:
        return CompletedError(
            f"run {run.run_id!r} is completed, so its results and parameters are "
            "read-only; create a new DataSet for new data (metadata can still be added)"
        )
    return view_write(run.run_id, state.writer)


def writer_alive(run_id: str, writer: WriterInfo, verb: str) -> WriterActiveError:
    return WriterActiveError(
        f"run {run_id!r} cannot be {verb} here: {writer.who} is writing it. Wait until it "
        f"completes the run; if that process hangs, stop it, then "
        f"store.resume_dataset({run_id!r}) continues the run (from another host: once its "
        "lease has not been renewed for lease_timeout seconds)"
    )


def view_write(run_id: str, writer: WriterInfo) -> WriterActiveError:
    reason = writer.gone_reason()
    if reason is None:
        return WriterActiveError(
            f"run {run_id!r} is being written by {writer.who}; this DataSet is a read-only "
            "view (store.read_dataset), so nothing was stored. Write through the DataSet that "
            "created the run; if that process is gone, store.resume_dataset(id) continues it"
        )
    return WriterActiveError(
        f"this DataSet is a read-only view of run {run_id!r} (store.read_dataset), so nothing "
        f"was stored; {reason}: continue the run with store.resume_dataset({run_id!r})"
    )
