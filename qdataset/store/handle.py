"""RunHandle: one run of one store, as the layers above the storage package see it.

The DataSet, its write buffer, cursors and subscriptions reach the database
only through a handle: it writes and reads the run's results, parameters and
metadata, and schedules the store's flusher thread.  It exposes no SQL, no
engine and no connection, so those layers never depend on how runs are laid
out in tables.  Every method raises qdataset errors only (see ``boundary.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import StoreClosedError
from ..paramspec import ParamSpec
from .codec import ColumnCodec
from .flusher import Flushable, Flusher
from .runs import RunRow, RunStorage
from .writers import Lease, LeaseKeeper


class RunHandle:
    """A run's storage operations.  Get one from ``Store.create_run`` or
    ``Store.resume_run`` (a writer, holding the run's lease) or ``Store.open_run``
    (a view: its writes raise WriterActiveError).

    >>> handle = store.open_run(run_id)
    >>> length, completed_at, parameter_count = handle.state()
    >>> for chunk in handle.read_columns(["x"], 0, length): ...
    """

    def __init__(self, storage: RunStorage, row: RunRow, flusher: Flusher,
                 released: Callable[[], bool] | None = None,
                 leases: LeaseKeeper | None = None) -> None:
        self._storage = storage
        self._row = row
        self._flusher = flusher
        # True once the store has finished closing (default: as soon as it starts).
        self._released = released or (lambda: flusher.closed)
        # A writer's handle holds the run's lease (renewed by the store's keeper for
        # as long as this handle lives); a view's handle holds none.
        self._leases = leases
        self._lease: Lease | None = None
        if row.token is not None and leases is not None:
            self._lease = Lease(row.run_id, row.token)
            leases.add(self, self._lease)

    # -- identity (fixed at creation) ---------------------------------------------------
    @property
    def key(self) -> int:
        """The run's key in this store (stable; what change feeds report)."""
        return self._row.pk

    @property
    def id(self) -> str:
        return self._row.run_id

    @property
    def name(self) -> str:
        return self._row.name

    @property
    def created_at(self) -> float:
        return self._row.created_at

    @property
    def number(self) -> int | None:
        """The run's number in its store."""
        return self._row.number

    @property
    def experiment(self) -> str | None:
        return self._row.experiment

    @property
    def sample(self) -> str | None:
        return self._row.sample

    @property
    def opened_length(self) -> int:
        """The run's length when this handle was made."""
        return self._row.length

    @property
    def opened_completed_at(self) -> float | None:
        """The completion time when this handle was made (None: incomplete)."""
        return self._row.completed_at

    @property
    def flush_interval(self) -> float:
        return self._flusher.interval

    @property
    def is_writer(self) -> bool:
        """Whether this handle holds the run's writer lease (else it is a view)."""
        return self._row.token is not None

    @property
    def lease_lost(self) -> Exception | None:
        """The error a writer's next call raises once its lease was found taken over."""
        return None if self._lease is None else self._lease.lost

    @property
    def async_commit(self) -> bool:
        """Whether row appends commit without waiting for the disk (PostgreSQL), so
        a crashed server may lose the last fraction of a second of them."""
        return self._storage.dialect.async_commit_appends

    def view_refusal(self) -> Exception:
        """The error a view's writing call raises (CompletedError or WriterActiveError)."""
        self.check_open()
        return self._storage.view_refusal(self._row)

    def check_open(self) -> None:
        """Raise StoreClosedError if the store was closed."""
        if self._flusher.closed:
            raise StoreClosedError(
                f"the store holding run {self.id!r} is closed; nothing was written. "
                "Open it again with connect(url) and store.read_dataset(id)"
            )

    def check_readable(self) -> None:
        """Raise StoreClosedError once the store has been closed.

        Writes are refused from the moment ``store.close()`` starts (check_open);
        reads until it has finished, so a subscriber told about the last flush
        during close can still read it."""
        if self._released():
            raise StoreClosedError(
                f"the store holding run {self.id!r} is closed, so the run cannot be read "
                "through it; open it again with connect(url) and store.read_dataset(id)"
            )

    # -- state -----------------------------------------------------------------------------
    def state(self) -> tuple[int, float | None, int]:
        """(length, completed_at, parameter count), in one cheap read."""
        self.check_readable()
        return self._storage.run_state(self._row.pk, self.id)

    def load_specs(self) -> list[ParamSpec]:
        """The run's parameters, in order (and where their values are stored)."""
        self.check_readable()
        return self._storage.load_specs(self._row.pk, self.id, self._row.columns)

    # -- writing ---------------------------------------------------------------------------
    def add_columns(self, specs: Sequence[ParamSpec], first_position: int,
                    values: dict[str, Sequence[Any]] | None = None) -> None:
        """Add parameters (existing rows get nulls), optionally with one value per row."""
        self.check_open()
        self._storage.add_columns(self._row, specs, first_position, values)

    def insert_rows(self, names: Sequence[str], rows: Sequence[Sequence[Any]],
                    new_length: int, kinds: Sequence[str | None] | None = None) -> None:
        """Insert ``[index, *values]`` rows and record the new length, atomically."""
        self._storage.insert_rows(self._row, names, rows, new_length, kinds)

    def insert_columns(self, names: Sequence[str], columns: Sequence[Sequence[Any]],
                       start: int, count: int,
                       kinds: Sequence[str | None] | None = None) -> None:
        """Insert ``count`` rows given as columns from index ``start``, atomically."""
        self.check_open()
        self._storage.insert_columns(self._row, names, columns, start, count, kinds)

    def update_rows(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Apply ``(index, {name: stored value})`` updates in one transaction."""
        self.check_open()
        self._storage.update_rows(self._row, updates)

    def complete(self, completed_at: float) -> float:
        """Complete the run and lock its results; returns the completion time.

        A view completes only a run whose writer is gone (WriterActiveError while
        it lives)."""
        self.check_open()
        done = self._storage.complete(self._row, completed_at)
        if self._lease is not None and self._leases is not None:
            self._leases.drop(self._lease)
        return done

    def set_metadata(self, tag: str, value_json: str) -> None:
        self.check_open()
        self._storage.set_metadata(self._row, tag, value_json)

    def metadata(self) -> dict[str, Any]:
        self.check_readable()
        return self._storage.get_metadata(self._row.pk, self.id)

    # -- reading ---------------------------------------------------------------------------
    def read_columns(self, names: Sequence[str], start: int, stop: int
                     ) -> Iterator[list[Any]]:
        """Chunks (lists of per-column lists) of rows ``start <= index < stop``."""
        self.check_readable()
        return self._storage.read_columns(self._row, names, start, stop)

    def read_arrays(self, names: Sequence[str], codecs: Sequence[ColumnCodec], start: int,
                    stop: int) -> list[np.ndarray]:
        """Rows ``start <= index < stop`` of ``names``: one array per parameter,
        decoded straight into place (peak memory: the result plus one chunk)."""
        self.check_readable()
        return self._storage.read_arrays(self._row, names, codecs, start, stop)

    # -- the store's flusher thread ------------------------------------------------------
    def schedule_flush(self, buffer: Flushable, delay: float | None = None) -> None:
        """Have ``buffer.flush()`` called within ``delay`` s (default: the flush interval)."""
        self._flusher.request(buffer, delay, owner=self.id)

    def retry_later(self, buffer: Flushable, exc: Exception) -> None:
        """A flush of ``buffer`` failed and kept its rows: retry it with backoff if the
        failure is transient, else keep it for the store's close to rescue."""
        self._flusher.retry_later(buffer, exc)

    def cancel_flush(self, buffer: Flushable) -> None:
        """Forget a scheduled flush (the buffer flushed itself)."""
        self._flusher.discard(buffer)

    def __repr__(self) -> str:
        return f"<RunHandle {self.id!r}>"
