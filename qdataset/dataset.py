"""DataSet: one measurement run, written row by row or in bulk, read as numpy arrays."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import (
    CompletedError,
    DuplicateParameterError,
    FlushError,
    IndexRangeError,
    InvalidParamSpecError,
    LengthMismatchError,
    MetadataError,
    MissingValueError,
    QDatasetError,
    UnknownParameterError,
    UnknownSubscriptionError,
    ValueTypeError,
)
from .paramspec import ParamSpec, name_of
from .recent import RecentRows
from .store.codec import ColumnCodec, number_kinds
from .store.schema import INDEX_COLUMN
from .subscription import in_callback

if TYPE_CHECKING:
    from .cursor import Cursor
    from .store import Store
    from .store.runs import RunRow, RunStorage
    from .subscription import Subscription

#: The store's flusher thread writes buffered rows in the background, so the
#: measurement loop keeps running while the database stores.  A loop that keeps
#: the GIL busy can starve that thread; once the oldest buffered row waited this
#: many flush delays, the writer writes its buffer itself.
WRITER_FLUSH_AFTER = 2.0

#: Tags that get_metadata computes; users cannot overwrite them.
RESERVED_TAGS = ("id", "parameters")


class DataSet:
    """A run: parameters (columns), results (rows) and metadata, in a store.

    >>> ds = DataSet("sweep", [x, y], store=store)
    >>> ds.add_result(x=0.1, y=2.0)
    0
    >>> ds.add_results({"x": xs, "y": ys})      # columnar bulk path
    1
    >>> xs, ys = ds.get_data("x", "y")
    >>> ds.mark_completed()

    Results are validated when added and buffered; they reach the database
    within ``store.flush_interval`` seconds, before every read, on
    :meth:`mark_completed`, on ``store.close()`` and at interpreter exit.
    """

    # -- construction -----------------------------------------------------------
    def __init__(
        self,
        name: str,
        specs: Sequence[ParamSpec] | None = None,
        values: Sequence[Any] | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueTypeError(f"DataSet name must be a non-empty string, got {name!r}")
        if store is None:
            from .store import default_store

            store = default_store()
        specs = list(specs or [])
        _check_new_specs([], specs)
        columns: list[Any] = []
        count = 0
        if values is not None:
            values = list(values)
            if len(values) != len(specs):
                raise LengthMismatchError(
                    f"DataSet {name!r}: {len(specs)} specs but {len(values)} value arrays; "
                    "give exactly one array or list per ParamSpec"
                )
            count = len(values[0]) if values else 0
            # Validate everything before the run exists, so a bad column leaves nothing.
            columns = [ColumnCodec(s).encode_column(v, rows=count)
                       for s, v in zip(specs, values, strict=True)]
        created = time.time()
        run_id = make_run_id(name, created)
        run = store._storage.create_run(run_id, name, created, specs)
        self._setup(store, run, specs, writer=True)
        if count:
            with self._io_lock, self._lock:
                self._storage.insert_columns(run, [s.name for s in specs], columns, 0, count,
                                             self._column_kinds)
                self._length = count

    @classmethod
    def _open(cls, store: Store, run: RunRow) -> DataSet:
        """A live view of an existing run (see Store.read_dataset)."""
        dataset = cls.__new__(cls)
        dataset._setup(store, run, store._storage.load_specs(run.pk), writer=False)
        return dataset

    def _setup(self, store: Store, run: RunRow, specs: list[ParamSpec], writer: bool) -> None:
        self._store = store
        self._storage: RunStorage = store._storage
        self._run = run
        self._lock = threading.Lock()  # guards the buffer, length and specs
        self._io_lock = threading.RLock()  # orders this run's database writes
        self._pending: list[list[Any]] = []
        self._flush_due = float("inf")  # when the oldest buffered row must be written
        self._recent: RecentRows | None = None  # decoded recent rows, once a cursor exists
        self._length = run.length
        self._completed = run.completed_at is not None
        self._writer = writer
        self._set_specs(specs)

    def _set_specs(self, specs: list[ParamSpec]) -> None:
        self._specs = list(specs)
        self._codecs = {s.name: ColumnCodec(s) for s in specs}
        # Row layout: [index, value of spec 0, value of spec 1, ...]
        self._encoders = {s.name: (i + 1, self._codecs[s.name].encode)
                          for i, s in enumerate(specs)}
        self._width = len(specs) + 1
        self._required = [(i + 1, s.name) for i, s in enumerate(specs) if not s.optional]
        self._all_required = len(self._required) == len(specs)
        self._column_names = [s.name for s in specs]
        self._column_kinds = [self._codecs[s.name].number_kind for s in specs]

    # -- identity and state ---------------------------------------------------------
    @property
    def id(self) -> str:
        """Unique id: creation date/time (UTC), the name and a random suffix."""
        return self._run.run_id

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def store(self) -> Store:
        return self._store

    @property
    def created_at(self) -> float:
        """Creation time, unix seconds."""
        return self._run.created_at

    @property
    def length(self) -> int:
        """Number of results, including those not yet flushed by this process."""
        if self._writer:
            return self._length
        length, completed_at, param_count = self._storage.run_state(self._run.pk)
        self._note_remote_state(completed_at, param_count)
        return length

    @property
    def is_empty(self) -> bool:
        return self.length == 0

    @property
    def is_marked_complete(self) -> bool:
        """Whether the run is completed.  The writing DataSet answers from memory (it
        completes the run itself; were the run completed elsewhere, its next flush
        would raise CompletedError and say so), so callbacks can ask on every call
        at no cost to the measurement; a view asks the database."""
        if not self._completed and not self._writer:
            _, completed_at, param_count = self._storage.run_state(self._run.pk)
            self._note_remote_state(completed_at, param_count)
        return self._completed

    def _note_remote_state(self, completed_at: float | None, param_count: int) -> None:
        if completed_at is not None:
            self._completed = True
        if param_count != len(self._specs):
            with self._lock:
                self._set_specs(self._storage.load_specs(self._run.pk))

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        state = "completed" if self._completed else "in progress"
        return f"<DataSet {self.id!r} {len(self._specs)} parameters, {state}>"

    # -- parameters ------------------------------------------------------------------
    def get_parameters(self) -> list[ParamSpec]:
        """The ParamSpecs of this run, in the order they were added."""
        return list(self._specs)

    def add_parameter(self, spec: ParamSpec) -> None:
        """Add a parameter; existing results get its null value."""
        self.add_parameters([spec])

    def add_parameters(self, specs: Iterable[ParamSpec]) -> None:
        """Add parameters; existing results get their null values."""
        self._add_parameters(list(specs), None)

    def add_parameter_values(self, spec: ParamSpec, values: Sequence[Any]) -> None:
        """Add a parameter together with one value per existing result.

        On an empty DataSet this creates ``len(values)`` results.
        """
        encoded = ColumnCodec(spec).encode_column(values)
        self._add_parameters([spec], encoded)

    def _add_parameters(self, specs: list[ParamSpec], column: Any) -> None:
        self._start_writing()
        with self._io_lock, self._lock:
            self._check_open()
            _check_new_specs(self._specs, specs)
            self._flush_locked()
            first = len(self._specs)
            if column is None or (not len(column) and self._length == 0):
                self._storage.add_columns(self._run, specs, first)
            elif self._length == 0:
                self._storage.add_columns(self._run, specs, first)
                self._storage.insert_columns(self._run, [specs[0].name], [column], 0,
                                             len(column), number_kinds(specs[:1]))
                self._length = len(column)
            elif len(column) != self._length:
                raise LengthMismatchError(
                    f"parameter {specs[0].name!r}: {len(column)} values for a DataSet of "
                    f"{self._length} results; give exactly one value per result"
                )
            else:
                self._storage.add_columns(self._run, specs, first, {specs[0].name: column})
            self._set_specs(self._specs + specs)
            self._forget_recent()

    # -- writing ---------------------------------------------------------------------
    def add_result(self, *args: Mapping[str, Any], **kwargs: Any) -> int:
        """Add one result, as keywords or one dict; returns its index."""
        if args:
            kwargs = _single_mapping(args, kwargs, "add_result takes keyword arguments")
        if not self._writer:
            self._start_writing()
        row = self._encode_row(kwargs)
        with self._lock:
            if self._completed:
                raise self._completed_error()
            index = row[0] = self._length
            self._length = index + 1
            self._pending.append(row)
            first = len(self._pending) == 1
        if first:
            self._request_flush()
        elif time.monotonic() >= self._flush_due:
            # Overdue: a busy measurement loop starved the flusher thread of the
            # GIL (see WRITER_FLUSH_AFTER), so the writer flushes itself.
            self.flush()
        return index

    def add_results(self, results: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> int:
        """Add results, keeping their order; returns the index of the first.

        ``results`` is a sequence of dicts, or one dict of name -> array
        (equal lengths): the columnar fast path for bulk data.
        """
        if not self._writer:
            self._start_writing()
        if isinstance(results, Mapping):
            return self._add_columns(results)
        rows = []
        for item in results:
            if not isinstance(item, Mapping):
                raise ValueTypeError(
                    f"add_results expects dicts of name -> value, got {type(item).__name__}"
                )
            rows.append(self._encode_row(item))
        with self._lock:
            if self._completed:
                raise self._completed_error()
            first = self._length
            for offset, row in enumerate(rows):
                row[0] = first + offset
            self._length = first + len(rows)
            was_empty = not self._pending
            self._pending.extend(rows)
        if rows and was_empty:
            self._request_flush()
        elif rows and time.monotonic() >= self._flush_due:
            self.flush()  # overdue (see add_result)
        return first

    def _add_columns(self, columns: Mapping[str, Any]) -> int:
        for name in columns:
            self._codec(name)
        missing = [name for _, name in self._required if name not in columns]
        if missing:
            raise self._missing_error(missing)
        names = list(columns)
        if not names:
            return self.length
        count = _column_length(names[0], columns[names[0]])
        encoded = [self._codecs[n].encode_column(columns[n], rows=count) for n in names]
        with self._io_lock, self._lock:
            self._check_open()
            self._flush_locked()
            first = self._length
            if count:
                self._storage.insert_columns(self._run, names, encoded, first, count,
                                             [self._codecs[n].number_kind for n in names])
                self._length = first + count
                self._forget_recent()
        self._after_flush()
        return first

    def _encode_row(self, values: Mapping[str, Any]) -> list[Any]:
        row: list[Any] = [0] + [None] * (self._width - 1)
        encoders = self._encoders
        for name, value in values.items():
            try:
                position, encode = encoders[name]
            except KeyError:
                raise self._unknown_error(name) from None
            if value is not None:
                row[position] = encode(value)
        if self._all_required:
            if None in row:
                raise self._missing_error([n for p, n in self._required if row[p] is None])
        else:
            missing = [n for p, n in self._required if row[p] is None]
            if missing:
                raise self._missing_error(missing)
        return row

    def modify_result(self, index: int, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Change values of result ``index``; a value of None removes it."""
        if args:
            kwargs = _single_mapping(args, kwargs,
                                     "modify_result takes an index and keyword arguments")
        self.modify_results(index, [kwargs])

    def modify_results(self, start_index: int, updates: Sequence[Mapping[str, Any]]) -> None:
        """Change results ``start_index``, ``start_index + 1``, ... in order."""
        self._start_writing()
        updates = list(updates)
        if isinstance(start_index, bool) or not isinstance(start_index, int | np.integer):
            raise ValueTypeError(f"result index must be an integer, got {start_index!r}")
        encoded = []
        for update in updates:
            if not isinstance(update, Mapping):
                raise ValueTypeError(
                    f"modify_results expects dicts of name -> value, got {type(update).__name__}"
                )
            changes = {}
            for name, value in update.items():
                codec = self._codec(name)
                changes[name] = None if value is None else codec.encode(value)
            encoded.append(changes)
        with self._io_lock, self._lock:
            self._check_open()
            stop = int(start_index) + len(updates)
            if start_index < 0 or stop > self._length:
                raise IndexRangeError(
                    f"cannot modify results {start_index}..{stop - 1} of run {self.id!r}, "
                    f"which has {self._length} results (valid indices 0..{self._length - 1})"
                )
            self._flush_locked()
            self._forget_recent()
            self._storage.update_rows(
                self._run, [(int(start_index) + i, c) for i, c in enumerate(encoded)]
            )

    def mark_completed(self) -> None:
        """Flush and complete the run: from now on its results are read-only."""
        with self._io_lock, self._lock:
            self._flush_locked()
            if not self._completed:
                self._storage.complete(self._run, time.time())
                self._completed = True
        self._after_flush(completed=True)

    def add_metadata(self, tag: str, metadata: Any) -> None:
        """Store JSON-able ``metadata`` under ``tag``, replacing what was there."""
        if not isinstance(tag, str) or not tag:
            raise MetadataError(f"metadata tag must be a non-empty string, got {tag!r}")
        if tag in RESERVED_TAGS:
            raise MetadataError(
                f"metadata tag {tag!r} is computed by qdataset and cannot be set; "
                "choose another tag"
            )
        try:
            text = json.dumps(metadata, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise MetadataError(
                f"metadata under {tag!r} is not JSON-serialisable ({exc}); "
                "convert numpy values with .tolist() or use plain dicts, lists and numbers"
            ) from exc
        self._storage.set_metadata(self._run, tag, text)

    def get_metadata(self, tag: str | None = None) -> Any:
        """All metadata, or the value under ``tag`` ("id" and "parameters" are built in)."""
        if tag == "id":
            return self.id
        if tag == "parameters":
            return self._parameters_metadata()
        stored = self._storage.get_metadata(self._run.pk)
        if tag is None:
            return {**stored, "id": self.id, "parameters": self._parameters_metadata()}
        if tag not in stored:
            raise MetadataError(
                f"run {self.id!r} has no metadata under {tag!r}; "
                f"tags present: {sorted([*stored, *RESERVED_TAGS])}"
            )
        return stored[tag]

    def _parameters_metadata(self) -> dict[str, Any]:
        return {s.name: {"spec": s.to_dict()} for s in self._specs}

    # -- the write buffer -----------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered results to the database now."""
        with self._io_lock:
            with self._lock:
                rows, self._pending = self._pending, []
                new_length = self._length
                self._store._flusher.discard(self)  # in the lock: see _request_flush
            if rows:
                self._write_rows(rows, new_length, requeue=True)
        if rows:
            self._after_flush()

    def _flush_locked(self) -> None:
        """Flush while holding both locks (schema changes, completion)."""
        rows, self._pending = self._pending, []
        self._store._flusher.discard(self)
        if rows:
            self._write_rows(rows, self._length, requeue=False)

    def _write_rows(self, rows: list[list[Any]], new_length: int, requeue: bool) -> None:
        try:
            self._storage.insert_rows(self._run, self._column_names, rows, new_length,
                                      self._column_kinds)
            if self._recent is not None:
                self._recent.add(rows, self._column_names,
                                 [self._codecs[n] for n in self._column_names])
        except CompletedError:
            # Completed elsewhere: these rows can never be stored; the error says so.
            self._completed = True
            raise
        except Exception as exc:
            # Keep the rows, in order, ahead of anything added meanwhile.
            if requeue:
                with self._lock:
                    self._pending[:0] = rows
            else:
                self._pending[:0] = rows
            raise FlushError(
                f"could not write {len(rows)} results of run {self.id!r} ({exc}); they are "
                "kept in memory and written by the next flush (ds.flush() retries now)"
            ) from exc

    def _request_flush(self) -> None:
        """Ask the store's flusher to write the buffer: within the flush interval, or
        sooner when subscribers of this run in this store want news more often."""
        notifier = self._store._notifier
        delay = notifier.flush_delay(self._run.pk) if notifier is not None else None
        if delay is None or delay > self._store.flush_interval:
            delay = self._store.flush_interval
        self._flush_due = time.monotonic() + WRITER_FLUSH_AFTER * delay
        self._store._flusher.request(self, delay)

    def _after_flush(self, completed: bool = False) -> None:
        """Tell the store's notifier (if anyone subscribed) that rows reached the database."""
        notifier = self._store._notifier
        if notifier is not None and notifier.watches(self._run.pk):
            notifier.notify(self._run.pk, self._length, completed or self._completed)

    def _start_writing(self) -> None:
        """A view becomes this run's writer: take length and state from the database."""
        if self._writer:
            return
        with self._lock:
            length, completed_at, param_count = self._storage.run_state(self._run.pk)
            if param_count != len(self._specs):
                self._set_specs(self._storage.load_specs(self._run.pk))
            self._length = length
            self._completed = completed_at is not None
            self._writer = True

    def _check_open(self) -> None:
        if self._completed:
            raise self._completed_error()

    # -- reading ---------------------------------------------------------------------
    def get_data(self, *params: str | ParamSpec | Any, start: int = 0,
                 end: int | None = None) -> list[np.ndarray]:
        """Values of ``params`` (names or ParamSpecs) for results ``start <= i < end``.

        One numpy array per parameter, of the parameter's dtype, with shape
        ``(rows,) + spec.shape``.  No params: every parameter.
        """
        names = [name_of(p) for p in params] or [s.name for s in self._specs]
        codecs = [self._codec(n) for n in names]
        if self._writer:
            self.flush()
        length = self.length
        if isinstance(start, bool) or not isinstance(start, int | np.integer) or start < 0:
            raise IndexRangeError(f"start must be a non-negative integer, got {start!r}")
        stop = length if end is None else min(int(end), length)
        if stop <= start:
            return [c.empty() for c in codecs]
        return self._read(names, codecs, int(start), stop)

    def _read(self, names: list[str], codecs: list[ColumnCodec], start: int, stop: int
              ) -> list[np.ndarray]:
        if all(c.native and c.dtype.kind == "f" for c in codecs):
            try:
                matrix = self._storage.read_float_matrix(self._run, names, start, stop)
            except (TypeError, ValueError):
                pass  # a NULL (or a short range): decode column by column below
            else:
                return [np.ascontiguousarray(matrix[:, i], dtype=c.dtype)
                        for i, c in enumerate(codecs)]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for chunk in self._storage.read_columns(self._run, names, start, stop):
            for i, column in enumerate(chunk):
                parts[i].append(codecs[i].decode(column))
        return [_concatenate(p, c) for p, c in zip(parts, codecs, strict=True)]

    # -- subscriptions -----------------------------------------------------------------
    def subscribe(self, callback: Callable[[DataSet, int, Any], Any], min_wait: float = 100,
                  min_count: int = 1, state: Any = None) -> Subscription:
        """Call ``callback(dataset, length, state)`` as results arrive.

        At most once per ``min_wait`` milliseconds, only when at least
        ``min_count`` new results arrived since the last call, and exactly once
        more when the run is completed.  Calls come from a background thread
        and never overlap.  Works for runs written by other processes too.

        >>> sub = ds.subscribe(lambda ds, n, state: print(n), min_wait=200)
        >>> ds.unsubscribe(sub)
        """
        from .subscription import Subscription

        if self._writer:
            self.flush()
        length = self.length
        sub = Subscription(self, callback, min_wait, min_count, state, start_length=length)
        self._store._get_notifier().add(sub)
        if self.is_marked_complete:
            self._store._notifier.notify(self._run.pk, length, True)
        return sub

    def unsubscribe(self, subid: Subscription) -> None:
        """Stop the calls of a subscription returned by :meth:`subscribe`."""
        from .subscription import Subscription

        if not isinstance(subid, Subscription) or subid.dataset is not self:
            raise UnknownSubscriptionError(
                f"{subid!r} is not a subscription of run {self.id!r}; pass the object "
                "that ds.subscribe() returned"
            )
        self._store._get_notifier().remove(subid)

    def cursor(self, position: int | None = None) -> Cursor:
        """A cursor at ``position`` (default: the current end) to read what is new."""
        from .cursor import Cursor

        if self._writer and self._recent is None:
            with self._io_lock:
                self._recent = RecentRows()
        return Cursor(self, self.length if position is None else position)

    def _read_new(self, names: list[str], start: int) -> list[np.ndarray]:
        """Values of ``names`` for every stored result from ``start`` on (for cursors).

        Outside callbacks the writer's buffer is flushed first, so a loop reads
        its own results.  A callback reads what its notification announced and
        whatever was stored since, without forcing a write: subscribers never
        add database transactions to the measurement loop.  The writer's
        freshly flushed rows come from its decoded window, not the database.
        """
        codecs = [self._codec(n) for n in names]
        if self._writer and not in_callback():
            self.flush()
        if self._recent is not None:
            arrays = self._recent.read(names, start)
            if arrays is not None:
                return [c.empty() if a is None else a for a, c in zip(arrays, codecs,
                                                                       strict=True)]
        # Rows still in flight (a callback did not flush) are simply not returned yet.
        stop = self.length
        if stop <= start:
            return [c.empty() for c in codecs]
        return self._read(names, codecs, start, stop)

    def _forget_recent(self) -> None:
        """Drop cached rows after the data changed other than by appending (io lock held)."""
        if self._recent is not None:
            self._recent.clear()

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> DataSet:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.mark_completed()

    # -- helpers ----------------------------------------------------------------------
    def _codec(self, name: str) -> ColumnCodec:
        codec = self._codecs.get(name)
        if codec is None and not self._writer:
            # A view may lag behind parameters its writer added since.
            with self._lock:
                self._set_specs(self._storage.load_specs(self._run.pk))
            codec = self._codecs.get(name)
        if codec is None:
            raise self._unknown_error(name)
        return codec

    def _unknown_error(self, name: str) -> UnknownParameterError:
        known = ", ".join(repr(s.name) for s in self._specs) or "none"
        return UnknownParameterError(
            f"run {self.id!r} has no parameter {name!r} (parameters: {known}); "
            "add it with ds.add_parameter(ParamSpec(...)) first"
        )

    def _missing_error(self, names: list[str]) -> MissingValueError:
        return MissingValueError(
            f"result for run {self.id!r} leaves out {', '.join(map(repr, names))}; give a "
            "value for every parameter, or declare it ParamSpec(..., optional=True)"
        )

    def _completed_error(self) -> CompletedError:
        return CompletedError(
            f"run {self.id!r} is completed, so its results and parameters are read-only; "
            "create a new DataSet for new data (metadata can still be added)"
        )


def make_run_id(name: str, created: float) -> str:
    """``YYYYmmdd-HHMMSS-<name>-<8 hex>``: sortable, readable and unique."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(created))
    return f"{stamp}-{name}-{secrets.token_hex(4)}"


def _single_mapping(args: tuple, kwargs: dict[str, Any], usage: str) -> Mapping[str, Any]:
    """The one dict given positionally instead of keywords (the spec allows either)."""
    if len(args) != 1 or kwargs or not isinstance(args[0], Mapping):
        raise ValueTypeError(f"{usage} or a single dict of name -> value")
    return args[0]


def _check_new_specs(existing: list[ParamSpec], new: list[ParamSpec]) -> None:
    """Reject non-ParamSpecs, duplicate names and dependencies on unknown parameters."""
    seen = {s.name.casefold() for s in existing}
    for spec in new:
        if not isinstance(spec, ParamSpec):
            raise InvalidParamSpecError(f"expected a ParamSpec, got {spec!r}")
        key = spec.name.casefold()
        if key == INDEX_COLUMN.casefold():
            raise InvalidParamSpecError(
                f"parameter name {spec.name!r} is reserved by qdataset; choose another name"
            )
        if key in seen:
            raise DuplicateParameterError(
                f"parameter name {spec.name!r} is used twice (names are case-insensitive); "
                "give each parameter its own name"
            )
        seen.add(key)
    names = {s.name for s in [*existing, *new]}
    for spec in new:
        unknown = [d for d in spec.depends_on if d not in names]
        if unknown:
            raise InvalidParamSpecError(
                f"parameter {spec.name!r} depends on {unknown}, which are not parameters of "
                "this DataSet; add those parameters too"
            )


def _column_length(name: str, values: Any) -> int:
    try:
        return len(values)
    except TypeError:
        raise ValueTypeError(
            f"parameter {name!r}: bulk add_results needs an array or list of values, "
            f"got {type(values).__name__}"
        ) from None


def _concatenate(parts: list[np.ndarray], codec: ColumnCodec) -> np.ndarray:
    if not parts:
        return codec.empty()
    if len(parts) == 1:
        return parts[0]
    if any(isinstance(p, np.ma.MaskedArray) for p in parts):
        return np.ma.concatenate(parts)
    return np.concatenate(parts)


__all__ = ["DataSet", "QDatasetError", "make_run_id"]
