"""Import QCoDeS databases: every run of a QCoDeS ``.db`` file into a store.

QCoDeS keeps runs in an SQLite file: a ``runs`` table (one row per run, with
the run description JSON, the snapshot and one column per metadata tag), an
``experiments`` table (name and sample) and one results table per run whose
columns are the parameters.  Numbers are stored natively (NaN as the text
``'nan'``; SQLite's NUMERIC affinity keeps whole numbers as integers), arrays
and complex values as numpy ``.npy`` blobs.  This module reads that file with
the standard library's ``sqlite3`` (read-only: the file is never modified; no
QCoDeS install is needed) and creates one qdataset run per QCoDeS run:

=====================  ===================================================
QCoDeS                 qdataset
=====================  ===================================================
GUID                   run id
captured_run_id        run number (the next free one if the store has it)
exp_name, sample_name  ``experiment``, ``sample``
name                   run name
run/completed stamps   ``created``, ``completed_at``; never completed:
                       an incomplete run without a writer (resumable)
paramtype numeric      float64 (int64 if it holds integers beyond 2**53)
paramtype array        the blobs' dtype, shape from the data
                       (a varying first axis: ``shape=(None, ...)``)
paramtype complex      complex (the widest of the blobs' dtypes)
paramtype text         str
depends_on             ``depends_on``; those parameters get role "setpoint"
label, unit            ``label``, ``unit``
inferred_from, type    the ParamSpec's metadata ``{"qcodes": {...}}``
metadata columns       run metadata, same tags (``qcodes_<tag>`` where a tag
                       is one qdataset reserves)
snapshot               metadata ``"snapshot"``
run description etc.   metadata ``"qcodes"`` (guid, ids, run description,
                       shapes, source file)
=====================  ===================================================

A parameter with a missing value in some row (QCoDeS leaves NULL where a
result did not give it) becomes ``optional``.  Every value is copied exactly.

>>> from qdataset import connect, import_qcodes
>>> ids = import_qcodes("experiments.db", store=connect("sqlite:///lab.db"))
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatError
from .paramspec import ParamSpec

if TYPE_CHECKING:
    from .store import Store

#: Rows read from a QCoDeS results table (and written to the store) at a time.
CHUNK_ROWS = 50_000

#: The columns QCoDeS itself puts in its ``runs`` table; any other column is a
#: metadata tag added with ``DataSet.add_metadata``.
_RUNS_COLUMNS = frozenset({
    "run_id", "exp_id", "name", "result_table_name", "result_counter", "run_timestamp",
    "completed_timestamp", "is_completed", "parameters", "guid", "run_description",
    "snapshot", "captured_run_id", "captured_counter", "parent_datasets"})

#: Metadata tags a QCoDeS tag is renamed from (qdataset computes or interprets them).
_RESERVED_TAGS = frozenset({"id", "parameters", "snapshot", "qcodes", "error"})

#: Largest magnitude a float64 holds every integer up to.
_EXACT_FLOAT_INT = 2 ** 53


class QCodesFormatError(FormatError):
    """The file is not a QCoDeS database this importer can read (the message says why)."""


@dataclass
class ImportReport:
    """What :func:`import_report` did with each run of the file."""

    #: Ids (QCoDeS GUIDs) of the runs imported now, in the file's order.
    imported: list[str] = field(default_factory=list)
    #: Ids of runs the store already had (an earlier import): left as they are.
    skipped: list[str] = field(default_factory=list)
    #: id -> (captured_run_id, number given) for runs whose number was taken.
    renumbered: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Rows imported, over all runs.
    rows: int = 0


def import_qcodes(path: str | os.PathLike, store: Store | None = None, *,
                  show_progress: bool | None = None) -> list[str]:
    """Import every run of the QCoDeS database ``path`` into ``store`` (default: the
    default store); returns the ids (QCoDeS GUIDs) of the runs imported.

    Runs the store already has (same GUID) are skipped, so importing the same file
    again, or a copy that grew, imports only what is new; :func:`import_report`
    says which were skipped and which runs got another number than their
    ``captured_run_id`` (because the store already used it).  A run that fails to
    import is removed again and the error raised; runs imported before it stay.

    ``show_progress``: progress bars over runs and rows on stderr (default: when
    stderr is a terminal).  A file that is not a QCoDeS database raises
    QCodesFormatError (a FormatError).

    >>> import_qcodes("~/experiments.db", store=connect("sqlite:///lab.db"))
    ['aaaaaaaa-0000-0000-0000-018c1f1e2a3b', ...]
    >>> connect("sqlite:///lab.db").read_dataset(42)      # QCoDeS's load_by_id(42)
    """
    return import_report(path, store, show_progress=show_progress).imported


def import_report(path: str | os.PathLike, store: Store | None = None, *,
                  show_progress: bool | None = None) -> ImportReport:
    """:func:`import_qcodes`, returning the full :class:`ImportReport`."""
    from tqdm import tqdm

    from .store import default_store

    if store is None:
        store = default_store()
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    report = ImportReport()
    with QCodesFile(path) as source:
        runs = source.runs()
        todo = [run for run in runs if not store.has_run(run.guid)]
        report.skipped = [run.guid for run in runs if store.has_run(run.guid)]
        total = sum(source.row_count(run) for run in todo)
        with tqdm(total=len(todo), unit="run", desc="runs", disable=not show_progress,
                  position=0) as run_bar, \
                tqdm(total=total, unit="row", desc="rows", disable=not show_progress,
                     position=1, unit_scale=True) as row_bar:
            for run in todo:
                run_bar.set_postfix_str(f"#{run.number} {run.name}", refresh=False)
                number = _import_run(source, run, store, row_bar.update)
                report.imported.append(run.guid)
                report.rows += source.row_count(run)
                if number is not None and number != run.number:
                    report.renumbered[run.guid] = (run.number, number)
                run_bar.update(1)
    return report


def _import_run(source: QCodesFile, run: QCodesRun, store: Store,
                progress: Any) -> int | None:
    columns = source.columns(run)
    specs = [column.spec for column in columns]

    def chunks() -> Iterator[tuple[list[Sequence[Any]], int]]:
        for rows in source.read_rows(run, [c.name for c in columns]):
            count = len(rows)
            yield [c.encode([row[i] for row in rows], count)
                   for i, c in enumerate(columns)], count
            progress(count)

    return store.import_run(
        run.guid, run.name, run.created_at, specs, [[] for _ in specs], 0,
        source.metadata(run), run.completed_at, experiment=run.experiment or None,
        sample=run.sample or None, number=run.number, chunks=chunks())


@dataclass(frozen=True)
class QCodesRun:
    """One row of QCoDeS's ``runs`` table, as the importer needs it."""

    run_id: int
    guid: str
    number: int
    name: str
    experiment: str
    sample: str
    table: str | None
    created_at: float
    completed_at: float | None
    description: dict[str, Any]
    row: dict[str, Any]


class QCodesFile:
    """A QCoDeS database opened read-only (``sqlite3``, ``mode=ro``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise FileNotFoundError(f"no QCoDeS database at {str(self.path)!r}")
        self.conn = sqlite3.connect(self._uri(), uri=True, check_same_thread=False)
        try:
            self.version = self._check()
        except BaseException:
            self.conn.close()
            raise

    def _uri(self) -> str:
        """A read-only URI.  QCoDeS files are in WAL mode, where even a read-only
        reader makes a ``-shm`` file beside the database; when no ``-wal`` file holds
        unmerged writes (no QCoDeS process has it open, none crashed), the file is
        read as ``immutable``, which touches nothing at all.  Otherwise SQLite must
        read the WAL, through a ``-shm`` file (the database file itself is never
        written either way)."""
        wal = self.path.with_name(self.path.name + "-wal")
        quiet = not wal.exists() or wal.stat().st_size == 0
        return self.path.as_uri() + ("?mode=ro&immutable=1" if quiet else "?mode=ro")

    def __enter__(self) -> QCodesFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _not_qcodes(self, why: str) -> QCodesFormatError:
        return QCodesFormatError(
            f"{str(self.path)!r} is not a QCoDeS database: {why}. import-qcodes reads the "
            ".db files QCoDeS writes (qcodes.dataset.initialise_or_create_database_at); "
            "a qdataset store is opened with connect(path) instead")

    def _check(self) -> int:
        """QCoDeS's schema version (``PRAGMA user_version``) once the file is known to
        be a QCoDeS database with everything the importer reads."""
        try:
            tables = {name for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._not_qcodes(f"it cannot be read as an SQLite database ({exc})") from exc
        missing = {"runs", "experiments", "layouts", "dependencies"} - tables
        if missing:
            if "alembic_version" in tables:
                raise self._not_qcodes("it is a qdataset store")
            raise self._not_qcodes(f"it has no {', '.join(sorted(missing))} table(s)")
        columns = self._runs_columns()
        needed = {"run_id", "exp_id", "name", "result_table_name", "run_timestamp",
                  "completed_timestamp", "is_completed", "guid", "run_description"}
        if needed - columns:
            raise self._not_qcodes(
                f"its runs table lacks {', '.join(sorted(needed - columns))} (QCoDeS schema "
                f"version {version}; versions 3 and later are read: open the file once with "
                "a recent QCoDeS to upgrade it)")
        return int(version)

    def _runs_columns(self) -> set[str]:
        return {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}

    # -- runs -------------------------------------------------------------------------
    def runs(self) -> list[QCodesRun]:
        self.conn.row_factory = sqlite3.Row
        try:
            rows = self.conn.execute(
                "SELECT r.*, e.name AS qd_exp_name, e.sample_name AS qd_sample_name, "
                "e.start_time AS qd_exp_start FROM runs r "
                "LEFT JOIN experiments e ON e.exp_id = r.exp_id ORDER BY r.run_id").fetchall()
        finally:
            self.conn.row_factory = None
        return [self._run(dict(row)) for row in rows]

    def _run(self, row: dict[str, Any]) -> QCodesRun:
        try:
            description = json.loads(row["run_description"] or "{}")
        except ValueError as exc:
            raise self._not_qcodes(
                f"run {row['run_id']} has a run_description that is not JSON ({exc})") from exc
        created = row["run_timestamp"]
        if created is None:  # created but never started: no results either
            created = row.get("qd_exp_start") or self.path.stat().st_mtime
        completed = None
        if row["is_completed"]:
            completed = row["completed_timestamp"]
            if completed is None:
                completed = created
        number = row.get("captured_run_id")
        return QCodesRun(
            run_id=int(row["run_id"]), guid=str(row["guid"]),
            number=int(number if number is not None else row["run_id"]),
            name=row["name"] or "results", experiment=row.get("qd_exp_name") or "",
            sample=row.get("qd_sample_name") or "", table=row["result_table_name"],
            created_at=float(created),
            completed_at=None if completed is None else float(completed),
            description=description, row=row)

    def _table_exists(self, run: QCodesRun) -> bool:
        return run.table is not None and self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (run.table,)).fetchone() is not None

    def row_count(self, run: QCodesRun) -> int:
        if not self._table_exists(run):
            return 0
        return int(self.conn.execute(f"SELECT count(*) FROM {_quote(run.table)}").fetchone()[0])

    def read_rows(self, run: QCodesRun, names: Sequence[str]) -> Iterator[list[tuple]]:
        """The results table in chunks of rows (in QCoDeS's insertion order)."""
        if not self._table_exists(run):
            return
        selected = ", ".join(_quote(n) for n in names) or "id"
        cursor = self.conn.execute(f"SELECT {selected} FROM {_quote(run.table)} ORDER BY id")
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield rows

    # -- parameters -------------------------------------------------------------------
    def paramspecs(self, run: QCodesRun) -> list[dict[str, Any]]:
        """QCoDeS's parameter records: name, paramtype, label, unit, depends_on,
        inferred_from (from the run description, any of its versions)."""
        desc = run.description
        old = desc.get("interdependencies")
        if isinstance(old, dict) and "paramspecs" in old:
            return [{"name": p["name"], "paramtype": p.get("paramtype", "numeric"),
                     "label": p.get("label") or "", "unit": p.get("unit") or "",
                     "depends_on": _names(p.get("depends_on")),
                     "inferred_from": _names(p.get("inferred_from"))}
                    for p in old["paramspecs"]]
        new = desc.get("interdependencies_")
        if not isinstance(new, dict) and isinstance(old, dict) and "parameters" in old:
            new = old  # version 1: the new-style structure under the old key
        if isinstance(new, dict) and "parameters" in new:
            deps, infs = new.get("dependencies", {}), new.get("inferences", {})
            return [{"name": name, "paramtype": p.get("paramtype", "numeric"),
                     "label": p.get("label") or "", "unit": p.get("unit") or "",
                     "depends_on": list(deps.get(name, [])),
                     "inferred_from": list(infs.get(name, []))}
                    for name, p in new["parameters"].items()]
        raise self._not_qcodes(f"run {run.run_id} has no parameter description")

    def columns(self, run: QCodesRun) -> list[_Column]:
        """One column per parameter, typed from the run description and the values."""
        records = self.paramspecs(run)
        present = set()
        if self._table_exists(run):
            present = {row[1] for row in self.conn.execute(
                f"PRAGMA table_info({_quote(run.table)})")}
        setpoints = {d for p in records for d in p["depends_on"]}
        columns = []
        for record in records:
            if present and record["name"] not in present:
                raise self._not_qcodes(
                    f"run {run.run_id}: parameter {record['name']!r} has no column in "
                    f"{run.table!r}")
            columns.append(self._column(run, record, record["name"] in setpoints,
                                        bool(present)))
        return columns

    def _column(self, run: QCodesRun, record: dict[str, Any], setpoint: bool,
                has_table: bool) -> _Column:
        name, paramtype = record["name"], record["paramtype"]
        stats = _Stats(0, 0, 0, 0, 0, 0)
        if has_table:
            q = _quote(name)
            stats = _Stats(*self.conn.execute(
                f"SELECT count(*), count({q}), sum(typeof({q}) = 'integer'), "
                f"sum(typeof({q}) = 'text'), sum(typeof({q}) = 'blob'), "
                f"max(abs(CASE WHEN typeof({q}) = 'integer' THEN {q} END)) "
                f"FROM {_quote(run.table)}").fetchone())
        meta = {"qcodes": {"paramtype": paramtype, "inferred_from": record["inferred_from"]}}
        common = {"role": "setpoint" if setpoint else "output",
                  "optional": stats.values < stats.rows, "unit": record["unit"],
                  "label": record["label"], "depends_on": record["depends_on"],
                  "metadata": meta}
        if stats.blobs:
            return self._blob_column(run, name, paramtype, stats, common)
        if paramtype == "text" or (stats.texts and not self._only_nonfinite_text(run, name)):
            return _Column(name, ParamSpec(name, str, **common), "text")
        dtype = np.int64 if (stats.integers == stats.values and stats.values
                             and (stats.max_int or 0) > _EXACT_FLOAT_INT) else np.float64
        return _Column(name, ParamSpec(name, dtype, **common), "numeric")

    def _only_nonfinite_text(self, run: QCodesRun, name: str) -> bool:
        """Whether every text value of a numeric column is one QCoDeS reads as a float
        ('nan' is how it stores NaN)."""
        q = _quote(name)
        texts = {t for (t,) in self.conn.execute(
            f"SELECT DISTINCT lower(trim({q})) FROM {_quote(run.table)} "
            f"WHERE typeof({q}) = 'text' LIMIT 20")}
        return texts <= {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}

    def _blob_column(self, run: QCodesRun, name: str, paramtype: str, stats: _Stats,
                     common: dict[str, Any]) -> _Column:
        """An array or complex parameter: dtype and shape from the ``.npy`` blobs.

        One pass reads the blobs' headers only (``substr``): the dtypes are
        widened to one that holds all, and the shape is fixed, or variable in its
        first axis when that is all that varies."""
        q = _quote(name)
        shapes: set[tuple[int, ...]] = set()
        dtypes: set[np.dtype] = set()
        for (head,) in self.conn.execute(
                f"SELECT DISTINCT substr({q}, 1, 512) FROM {_quote(run.table)} "
                f"WHERE typeof({q}) = 'blob'"):
            dtype, shape = _npy_header(bytes(head), run.run_id, name)
            dtypes.add(dtype)
            shapes.add(shape)
        dtype = np.result_type(*dtypes)
        if stats.integers or stats.texts or dtype.kind not in "biufcUSMm":
            raise QCodesFormatError(
                f"run {run.run_id} of {str(self.path)!r}: parameter {name!r} holds values "
                f"qdataset cannot import exactly (mixed blobs and numbers, or dtype {dtype})")
        if paramtype == "complex" or (dtype.kind == "c" and shapes == {(1,)}):
            return _Column(name, ParamSpec(name, dtype, **common), "complex", dtype)
        if len(shapes) == 1:
            shape = next(iter(shapes))
        elif len({s[1:] for s in shapes}) == 1 and all(s for s in shapes):
            shape = (None, *next(iter(shapes))[1:])
        else:
            raise QCodesFormatError(
                f"run {run.run_id} of {str(self.path)!r}: array parameter {name!r} has "
                f"values of shapes {sorted(shapes)[:4]}; qdataset stores arrays of one shape, "
                "or whose first axis varies")
        return _Column(name, ParamSpec(name, dtype, shape=shape, **common), "array", dtype)

    # -- metadata ---------------------------------------------------------------------
    def metadata(self, run: QCodesRun) -> dict[str, Any]:
        row = run.row
        found: dict[str, Any] = {}
        for tag, value in row.items():
            if tag in _RUNS_COLUMNS or tag.startswith("qd_") or value is None:
                continue
            found[f"qcodes_{tag}" if tag in _RESERVED_TAGS else tag] = _json_value(value)
        snapshot = row.get("snapshot")
        if snapshot:
            try:
                found["snapshot"] = json.loads(snapshot)
            except ValueError:
                found["snapshot"] = snapshot
        parents = row.get("parent_datasets")
        found["qcodes"] = {
            "guid": run.guid, "run_id": run.run_id, "captured_run_id": run.number,
            "captured_counter": row.get("captured_counter"),
            "result_counter": row.get("result_counter"), "exp_id": row.get("exp_id"),
            "exp_name": run.experiment, "sample_name": run.sample,
            "result_table_name": run.table,
            "run_timestamp": row.get("run_timestamp"),
            "completed_timestamp": row.get("completed_timestamp"),
            "parent_datasets": _maybe_json(parents),
            "run_description": run.description,
            "source": str(self.path), "schema_version": self.version,
        }
        return found


@dataclass(frozen=True)
class _Stats:
    rows: int
    values: int
    integers: int | None
    texts: int | None
    blobs: int | None
    max_int: int | None


@dataclass(frozen=True)
class _Column:
    """One QCoDeS parameter: its ParamSpec and how its stored values decode."""

    name: str
    spec: ParamSpec
    kind: str  # "numeric", "text", "array", "complex"
    dtype: np.dtype | None = None

    def encode(self, values: list[Any], count: int) -> Sequence[Any]:
        """The database values of a chunk of stored values (None stays missing)."""
        from .store.codec import ColumnCodec

        codec = ColumnCodec(self.spec)
        if self.kind == "numeric" and not self.spec.optional:
            # NaN was stored as the text 'nan': numpy parses it like float() does.
            return codec.encode_column(np.array(values, dtype=self.spec.type), rows=count)
        if self.kind == "numeric":
            kind = self.spec.type.type
            return codec.encode_column(
                [None if v is None else kind(float(v) if isinstance(v, str) else v)
                 for v in values], rows=count)
        if self.kind == "text":
            return codec.encode_column([None if v is None else str(v) for v in values],
                                       rows=count)
        decoded = [None if v is None else _read_npy(v) for v in values]
        if self.kind == "complex":
            decoded = [None if v is None else self.dtype.type(v.reshape(-1)[0])
                       for v in decoded]
        else:
            decoded = [None if v is None else v.astype(self.dtype, copy=False)
                       for v in decoded]
        return codec.encode_column(decoded, rows=count)


def _read_npy(blob: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)


def _npy_header(head: bytes, run_id: int, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) from the start of a ``.npy`` blob."""
    stream = io.BytesIO(head)
    try:
        major, _minor = np.lib.format.read_magic(stream)
        reader = {1: np.lib.format.read_array_header_1_0,
                  2: np.lib.format.read_array_header_2_0}.get(major)
        if reader is None:  # version 3.0: version 2.0's header, text in UTF-8
            stream.seek(0)
            stream.write(b"\x93NUMPY\x02\x00")
            stream.seek(8)
            reader = np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except Exception as exc:  # noqa: BLE001 - any malformed header: say which value
        raise QCodesFormatError(
            f"run {run_id}: a value of parameter {name!r} is a blob but not a numpy .npy "
            f"array ({exc}); it cannot be imported") from exc
    if dtype.hasobject:
        raise QCodesFormatError(
            f"run {run_id}: parameter {name!r} holds pickled Python objects; not imported")
    return dtype, tuple(shape)


def _names(value: Any) -> list[str]:
    """depends_on / inferred_from: a list, or a comma-separated string (old files)."""
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return value


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


__all__ = ["ImportReport", "QCodesFormatError", "import_qcodes", "import_report"]
