"""DataSet: one measurement run, written row by row or in bulk, read as numpy arrays."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import (
    CompletedError,
    DuplicateParameterError,
    FlushError,
    IndexRangeError,
    InvalidArgumentError,
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
from .store import RunHandle, Store, default_store
from .store.codec import ColumnCodec, columns_of, number_kinds
from .store.dialect import RESERVED_PREFIX
from .store.store import ERROR_TAG
from .subscription import Notifier, Subscription, in_callback
from .writebuffer import RowLayout, WriteBuffer

if TYPE_CHECKING:
    from .cursor import Cursor

log = logging.getLogger("qdataset")

#: Longest run name: the id ``YYYYmmdd-HHMMSS-<name>-<8 hex>`` is stored in 255 characters.
MAX_NAME_LENGTH = 255 - len("YYYYmmdd-HHMMSS--01234567")

#: Longest metadata tag, in characters, on every engine.
MAX_TAG_LENGTH = 255

#: A bulk write is split into transactions of at most this many values, so it never
#: holds SQLite's write lock (which every other writer waits for) for long: about
#: a second on a laptop.
BULK_TRANSACTION_CELLS = 2_000_000

#: Tags that get_metadata computes; users cannot overwrite them.
RESERVED_TAGS = ("id", "parameters")

# ERROR_TAG ("error") is not reserved: qdataset sets it when the block of
# ``with DataSet(...)`` raises, and users may set it too (e.g. a loop that
# catches its own failure); either way a run carrying it is listed as failed.


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
        experiment: str | None = None,
        sample: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueTypeError(f"DataSet name must be a non-empty string, got {name!r}")
        for label, group in (("experiment", experiment), ("sample", sample)):
            if group is not None and (not isinstance(group, str) or not group):
                raise ValueTypeError(
                    f"DataSet {label}= must be a non-empty string or None, got {group!r}")
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidArgumentError(
                f"DataSet name {name[:40]!r}... has {len(name)} characters; the run id holds "
                f"at most {MAX_NAME_LENGTH} (on every engine, so runs can be copied between "
                "them): shorten it and keep the details in ds.add_metadata(...)"
            )
        if store is None:
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
        handle = store.create_run(make_run_id(name, created), name, created, specs,
                                  experiment=experiment, sample=sample)
        self._setup(store, handle, specs, writer=True)
        if count:
            buffer = self._buffer
            with buffer.io_lock, buffer.lock:
                self._insert_bulk([s.name for s in specs], columns, 0, count)

    @classmethod
    def from_handle(cls, store: Store, handle: RunHandle) -> DataSet:
        """The DataSet of an existing run: a live, read-only view (what
        ``store.read_dataset(id)`` returns), or its writer when ``handle`` holds the
        run's lease (``store.resume_dataset(id)``)."""
        dataset = cls.__new__(cls)
        dataset._setup(store, handle, handle.load_specs(), writer=handle.is_writer)
        return dataset

    def _setup(self, store: Store, handle: RunHandle, specs: list[ParamSpec],
               writer: bool) -> None:
        self._store = store
        self._handle = handle
        self._writer = writer
        self._set_specs(specs)
        self._buffer = WriteBuffer(handle, handle.opened_length,
                                   handle.opened_completed_at is not None, self._layout(),
                                   announce=self._announce, flush_delay=self._flush_delay)
        self._completed_at = handle.opened_completed_at

    def _set_specs(self, specs: list[ParamSpec]) -> None:
        """Install a new parameter list (callers hold the buffer lock, or own the object)."""
        self._specs = list(specs)
        self._codecs = {s.name: ColumnCodec(s) for s in specs}
        # Row layout: [index, value of spec 0, value of spec 1, ...]
        self._encoders = {s.name: (i + 1, codec.encode, codec.stored_as_is)
                          for i, (s, codec) in enumerate(zip(specs, self._codecs.values(),
                                                             strict=True))}
        self._blank_row: list[Any] = [0] + [None] * len(specs)
        self._required = [(i + 1, s.name) for i, s in enumerate(specs) if not s.optional]
        self._all_required = len(self._required) == len(specs)

    def _layout(self) -> RowLayout:
        return RowLayout([s.name for s in self._specs], list(self._codecs.values()))

    # -- identity and state ---------------------------------------------------------
    @property
    def id(self) -> str:
        """Unique id: creation date/time (UTC), the name and a random suffix."""
        return self._handle.id

    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def store(self) -> Store:
        return self._store

    @property
    def number(self) -> int | None:
        """The run's number in its store: ``store.read_dataset(number)`` finds it."""
        return self._handle.number

    @property
    def experiment(self) -> str | None:
        """The experiment the run was grouped under at creation (or None)."""
        return self._handle.experiment

    @property
    def sample(self) -> str | None:
        """The sample the run was grouped under at creation (or None)."""
        return self._handle.sample

    @property
    def created_at(self) -> float:
        """Creation time, unix seconds."""
        return self._handle.created_at

    @property
    def completed_at(self) -> float | None:
        """Completion time, unix seconds (None while the run is in progress)."""
        self._handle.check_readable()
        if self._completed_at is None and not self._writer:
            self._refresh_state()
        return self._completed_at

    @property
    def length(self) -> int:
        """Number of results, including those not yet flushed by this process."""
        if self._writer:
            self._handle.check_readable()
            return self._buffer.length
        return self._refresh_state()

    @property
    def is_writer(self) -> bool:
        """Whether this DataSet writes the run (it created or resumed it); False for a
        read-only view from ``store.read_dataset``."""
        return self._writer

    @property
    def is_empty(self) -> bool:
        return self.length == 0

    @property
    def is_marked_complete(self) -> bool:
        """Whether the run is completed.  The writing DataSet answers from memory (it
        completes the run itself; were the run completed elsewhere, its next flush
        would raise CompletedError and say so), so callbacks can ask on every call
        at no cost to the measurement; a view asks the database."""
        self._handle.check_readable()
        if not self._buffer.completed and not self._writer:
            self._refresh_state()
        return self._buffer.completed

    def _refresh_state(self) -> int:
        """A view reads the run's state from the database; returns its length.

        The read happens before any lock is taken, so a view never makes a
        writer in this process wait for the database."""
        length, completed_at, specs = self._stored_state()
        with self._buffer.lock:
            if completed_at is not None:
                self._buffer.completed = True
                self._completed_at = completed_at
            if specs is not None and len(specs) > len(self._specs):
                self._set_specs(specs)
                self._buffer.set_layout(self._layout())
        return length

    def _stored_state(self) -> tuple[int, float | None, list[ParamSpec] | None]:
        """(length, completed_at, parameters if they changed) as the database has them."""
        length, completed_at, param_count = self._handle.state()
        specs = self._handle.load_specs() if param_count != len(self._specs) else None
        return length, completed_at, specs

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        state = "completed" if self._buffer.completed else "in progress"
        return f"<DataSet {self.id!r} {len(self._specs)} parameters, {state}>"

    # -- parameters ------------------------------------------------------------------
    def get_parameters(self) -> list[ParamSpec]:
        """The ParamSpecs of this run, in the order they were added."""
        self._handle.check_readable()
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
        if not self._writer:
            self._refuse_view()
        buffer, handle = self._buffer, self._handle
        with buffer.io_lock, buffer.lock:
            self._check_open()
            _check_new_specs(self._specs, specs)
            buffer.flush_locked()
            first = len(self._specs)
            length = buffer.length
            if column is None or (not len(column) and length == 0):
                handle.add_columns(specs, first)
            elif length == 0:
                handle.add_columns(specs, first)
                handle.insert_columns([specs[0].name], [column], 0, len(column),
                                      number_kinds(specs[:1]))
                buffer.length = len(column)
            elif len(column) != length:
                raise LengthMismatchError(
                    f"parameter {specs[0].name!r}: {len(column)} values for a DataSet of "
                    f"{length} results; give exactly one value per result"
                )
            else:
                handle.add_columns(specs, first, {specs[0].name: column})
            self._set_specs(self._specs + specs)
            buffer.set_layout(self._layout())
            buffer.forget_recent()

    # -- writing ---------------------------------------------------------------------
    def add_result(self, *args: Mapping[str, Any], **kwargs: Any) -> int:
        """Add one result, as keywords or one dict; returns its index."""
        if args:
            kwargs = _single_mapping(args, kwargs, "add_result takes keyword arguments")
        if not self._writer:
            self._refuse_view()
        return self._buffer.append_one(self._encode_row(kwargs), self._completed_error)

    def add_results(self, results: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> int:
        """Add results, keeping their order; returns the index of the first.

        ``results`` is a sequence of dicts, or one dict of name -> array
        (equal lengths): the columnar fast path for bulk data.
        """
        if not self._writer:
            self._refuse_view()
        if isinstance(results, Mapping):
            return self._add_columns(results)
        rows = []
        for item in results:
            if not isinstance(item, Mapping):
                raise ValueTypeError(
                    f"add_results expects dicts of name -> value, got {type(item).__name__}"
                )
            rows.append(self._encode_row(item))
        return self._buffer.append(rows, self._completed_error)

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
        buffer = self._buffer
        # Both locks across the insert: rows added meanwhile must be numbered after it.
        with buffer.io_lock, buffer.lock:
            self._check_open()
            buffer.flush_locked()
            first = buffer.length
            if count:
                buffer.forget_recent()
                self._insert_bulk(names, encoded, first, count)
        buffer.announce()
        return first

    def _insert_bulk(self, names: list[str], encoded: list[Any], first: int,
                     count: int) -> None:
        """Store ``count`` encoded rows from index ``first`` (callers hold both buffer
        locks), in transactions of at most BULK_TRANSACTION_CELLS values, so a big
        bulk write never holds SQLite's write lock for long; the length follows each."""
        kinds = [self._codecs[n].number_kind for n in names]
        step = max(1, BULK_TRANSACTION_CELLS // max(1, len(names)))
        stored = 0
        try:
            for lo in range(0, count, step):
                hi = min(lo + step, count)
                self._handle.insert_columns(names, [c[lo:hi] for c in encoded], first + lo,
                                            hi - lo, kinds)
                stored = hi
                self._buffer.length = first + hi
        except Exception as exc:
            if not stored:
                raise  # nothing was stored: the call changed nothing
            raise FlushError(
                f"run {self.id!r}: the first {stored} of these {count} results were stored "
                f"(indices {first}..{first + stored - 1}), the other {count - stored} were "
                f"not ({exc}); add those again, e.g. ds.add_results({{name: values[{stored}:]"
                "}) for each parameter"
            ) from exc

    def _encode_row(self, values: Mapping[str, Any]) -> list[Any]:
        row = self._blank_row[:]
        encoders = self._encoders
        for name, value in values.items():
            try:
                position, encode, as_is = encoders[name]
            except KeyError:
                raise self._unknown_error(name) from None
            if type(value) is as_is:  # the measurement loop's usual float: no call
                row[position] = value
            elif value is not None:
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
        if not self._writer:
            self._refuse_view()
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
        buffer = self._buffer
        with buffer.io_lock, buffer.lock:
            self._check_open()
            stop = int(start_index) + len(updates)
            if start_index < 0 or stop > buffer.length:
                raise IndexRangeError(
                    f"cannot modify results {start_index}..{stop - 1} of run {self.id!r}, "
                    f"which has {buffer.length} results (valid indices 0..{buffer.length - 1})"
                )
            buffer.flush_locked()
            buffer.forget_recent()
            self._handle.update_rows(
                [(int(start_index) + i, c) for i, c in enumerate(encoded)]
            )

    def mark_completed(self) -> None:
        """Flush and complete the run: from now on its results are read-only.

        A view (``store.read_dataset``) may complete a run whose writer is gone
        (the results stored so far become the run); while the writer lives it
        raises WriterActiveError."""
        buffer = self._buffer
        with buffer.io_lock, buffer.lock:
            buffer.flush_locked()
            if not buffer.completed:
                self._completed_at = self._handle.complete(time.time())
                buffer.completed = True
        buffer.announce()

    def unwritten_results(self) -> dict[str, np.ndarray]:
        """The results this writer accepted but has not written, as one array per
        parameter (the columnar form ``add_results`` takes); they are the last ones,
        ending at index ``ds.length - 1``.

        Normally empty, or a few rows on their way.  After a failure that
        retrying cannot cure (the run was completed or taken over elsewhere) they
        stay here, and ``store.close()`` saves them to a rescue file."""
        item = self._buffer.unwritten()
        codecs = self._buffer.layout.codecs
        if item is None:
            return {c.spec.name: c.empty() for c in codecs}
        columns = columns_of(item.rows, len(codecs), skip=1)
        return {c.spec.name: c.decode(column) for c, column in zip(codecs, columns, strict=True)}

    def add_metadata(self, tag: str, metadata: Any) -> None:
        """Store JSON-able ``metadata`` under ``tag``, replacing what was there."""
        if not isinstance(tag, str) or not tag:
            raise MetadataError(f"metadata tag must be a non-empty string, got {tag!r}")
        if len(tag) > MAX_TAG_LENGTH:
            raise MetadataError(
                f"metadata tag {tag[:40]!r}... is {len(tag)} characters long; tags are limited "
                f"to {MAX_TAG_LENGTH} characters (on every engine); use a shorter tag and put "
                "the details in the value"
            )
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
        self._handle.set_metadata(tag, text)

    def get_metadata(self, tag: str | None = None) -> Any:
        """All metadata, or the value under ``tag`` ("id" and "parameters" are built in)."""
        if tag == "id":
            return self.id
        if tag == "parameters":
            return self._parameters_metadata()
        stored = self._handle.metadata()
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

    # -- the write buffer (see writebuffer.py) --------------------------------------------
    def flush(self) -> None:
        """Write buffered results to the database now."""
        self._buffer.flush()

    def _flush_delay(self) -> float | None:
        """How soon subscribers of this run in this store want its rows (None: no hurry)."""
        notifier = self._store.attachment(Notifier, create=False)
        return None if notifier is None else notifier.flush_delay(self._handle.key)

    def _announce(self, length: int, completed: bool) -> None:
        """Tell the store's notifier (if anyone subscribed) that rows reached the database."""
        notifier = self._store.attachment(Notifier, create=False)
        if notifier is not None and notifier.watches(self._handle.key):
            notifier.notify(self._handle.key, length, completed)

    def _refuse_view(self) -> None:
        """A view writes nothing: raise CompletedError or WriterActiveError (naming
        the writer and how to take over)."""
        raise self._handle.view_refusal()

    def _check_open(self) -> None:
        """Raise if nothing may be written (callers hold the buffer lock)."""
        self._handle.check_open()
        if self._buffer.failure is not None:
            raise self._buffer.failure.with_traceback(None)
        if self._buffer.completed:
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
        return self._handle.read_arrays(names, codecs, start, stop)

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
        if self._writer:
            self.flush()
        length = self.length
        sub = Subscription(self, callback, min_wait, min_count, state, start_length=length,
                           run_key=self._handle.key, remote=not self._writer)
        notifier = self._store.attachment(Notifier)
        notifier.add(sub)
        if self.is_marked_complete:
            notifier.notify(self._handle.key, length, True)
        return sub

    def unsubscribe(self, subid: Subscription) -> None:
        """Stop the calls of a subscription returned by :meth:`subscribe`."""
        if not isinstance(subid, Subscription) or subid.dataset is not self:
            raise UnknownSubscriptionError(
                f"{subid!r} is not a subscription of run {self.id!r}; pass the object "
                "that ds.subscribe() returned"
            )
        notifier = self._store.attachment(Notifier, create=False)
        if notifier is not None:
            notifier.remove(subid)

    def cursor(self, position: int | None = None) -> Cursor:
        """A cursor at ``position`` (default: the current end) to read what is new."""
        from .cursor import Cursor

        self._handle.check_readable()
        if self._writer:
            self._buffer.keep_recent()
        return Cursor(self, self.length if position is None else position,
                      reader=self._read_new)

    def _read_new(self, names: list[str], start: int) -> list[np.ndarray]:
        """Values of ``names`` for every stored result from ``start`` on (for cursors).

        Outside callbacks the writer's buffer is flushed first, so a loop reads
        its own results.  A callback reads what its notification announced and
        whatever was stored since, without forcing a write: subscribers never
        add database transactions to the measurement loop.  The writer's
        freshly flushed rows come from its decoded window, not the database.
        """
        self._handle.check_readable()  # the decoded window below is no excuse after close
        codecs = [self._codec(n) for n in names]
        if self._writer and not in_callback():
            self.flush()
        recent = self._buffer.recent
        if recent is not None:
            arrays = recent.read(names, start)
            if arrays is not None:
                return [c.empty() if a is None else a for a, c in zip(arrays, codecs,
                                                                       strict=True)]
        # Rows still in flight (a callback did not flush) are simply not returned yet.
        stop = self.length
        if stop <= start:
            return [c.empty() for c in codecs]
        return self._read(names, codecs, start, stop)

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> DataSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: Any) -> None:
        """Complete the run.  If the block raised, the writer first records
        ``{"type": ..., "message": ...}`` under the metadata tag "error" (so the
        run is listed as failed) and the exception propagates unchanged: a
        problem recording or completing is logged and noted on it, never raised
        in its place."""
        if exc is None:
            self.mark_completed()
            return
        problems = []
        if self._writer:  # a view's block failing says nothing about the measurement
            try:
                self.add_metadata(ERROR_TAG, _error_record(exc))
            except Exception as failure:  # noqa: BLE001 - the user's error comes first
                problems.append(f"recording the error failed: {failure}")
        try:
            self.mark_completed()
        except Exception as failure:  # noqa: BLE001
            problems.append(f"completing the run failed: {failure}")
        for problem in problems:
            log.warning("qdataset: run %s ended by %s; %s", self.id, type(exc).__name__,
                        problem)
            exc.add_note(f"qdataset: run {self.id!r}: {problem}")

    # -- helpers ----------------------------------------------------------------------
    def _codec(self, name: str) -> ColumnCodec:
        codec = self._codecs.get(name)
        if codec is None and not self._writer:
            # A view may lag behind parameters its writer added since.
            self._refresh_state()
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


def _error_record(exc: BaseException) -> dict[str, str]:
    """What the "error" tag holds: the exception's type (module-qualified unless
    built in) and message."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"
    return {"type": name, "message": str(exc)}


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
        if key.startswith(RESERVED_PREFIX):
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


__all__ = ["DataSet", "QDatasetError", "make_run_id"]
