"""``ExperimentService``: qiskit-experiments' experiment service over a qdataset store.

qiskit-experiments saves an ``ExperimentData`` by calling a handful of methods
on ``exp_data.service`` (``create_or_update_experiment``,
``create_analysis_results``, ``create_figures``, ``file_upload``, ...) and
loads one with ``ExperimentData.load(id, service)``.  This class answers those
calls from the store's ``qe_*`` tables, on SQLite or PostgreSQL::

    from qdataset.experiment import ExperimentService
    exp_data = T1(physical_qubits=(0,), delays=delays).run(backend)
    exp_data.service = ExperimentService("sqlite:///lab.db")
    exp_data.save()
    same = ExperimentData.load(exp_data.experiment_id, ExperimentService("sqlite:///lab.db"))

Behaviour (that of qiskit-experiments' ``LocalExperimentService`` where it has one):

* every create/update call is an upsert: ``create=`` and ``max_attempts=`` are
  accepted and need not be right (qiskit-experiments re-sends everything on
  each save);
* JSON goes through the encoder/decoder the client passes (qiskit-experiments'
  ``ExperimentEncoder``/``ExperimentDecoder`` when none is given) and is kept as
  text, so NaN, infinities, ndarrays, ufloats, enums and sets come back;
* unknown ids raise qiskit-experiments' ``ExperimentEntryNotFound`` (also a
  :class:`qdataset.experiment.ExperimentEntryNotFound`), naming the id;
  deleting a figure that is not there is not an error;
* each call is one transaction, so analysis worker threads (``auto_save``) and
  other processes may call concurrently.

Beyond the service interface, :meth:`ExperimentService.save` also keeps the
experiment's raw job results, and :meth:`load` (or ``provider=service.provider``)
gives them back, so a loaded experiment can be analysed again offline.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import InvalidArgumentError
from ..store import Store, connect
from ..store.service_store import ServiceStorage
from . import service_records as records
from .service_errors import not_found
from .stored_jobs import StoreProvider, save_job_results

LOG = logging.getLogger(__name__)

Encoder = type[json.JSONEncoder] | None
Decoder = type[json.JSONDecoder] | None


class ExperimentService:
    """The experiment service qiskit-experiments saves to and loads from, over a store.

    ``store_or_url``: a :class:`qdataset.Store`, a URL (``"sqlite:///lab.db"``,
    ``"postgresql+psycopg://host/db"``) or None for the default store.  A URL
    is opened (created and migrated if needed) and closed by :meth:`close`; a
    Store passed in stays the caller's.  ``auto_save``: the preference
    qiskit-experiments reads when the service is attached (``options`` /
    ``preferences``); with it, every change to the experiment is saved at once.

    >>> service = ExperimentService("sqlite:///lab.db", auto_save=True)
    >>> exp_data.service = service          # saved now, and after every change
    """

    def __init__(self, store_or_url: Store | str | os.PathLike | None = None, *,
                 auto_save: bool = False) -> None:
        if isinstance(store_or_url, Store):
            self._store, self._owns_store = store_or_url, False
        elif store_or_url is None or isinstance(store_or_url, (str, os.PathLike)):
            self._store, self._owns_store = connect(store_or_url), True
        else:
            raise InvalidArgumentError(
                "ExperimentService takes a qdataset Store or a database URL, got "
                f"{type(store_or_url).__name__}")
        self._storage = ServiceStorage(self._store)
        self._options: dict[str, Any] = {"auto_save": bool(auto_save)}
        self._provider = StoreProvider(self._store)

    # -- the service itself -------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The qdataset store the service writes to."""
        return self._store

    @property
    def options(self) -> dict[str, Any]:
        """Service options; qiskit-experiments reads ``options["auto_save"]``."""
        return self._options

    @property
    def preferences(self) -> dict[str, Any]:
        """The same dict as :attr:`options` (``AnalysisResult`` reads this name)."""
        return self._options

    @property
    def provider(self) -> StoreProvider:
        """A provider of the job results kept by :meth:`save` (``provider=`` of
        ``ExperimentData.load``)."""
        return self._provider

    def close(self) -> None:
        """Close the store if the service opened it from a URL."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> ExperimentService:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ExperimentService {self._store.display_url!r}>"

    # -- experiments --------------------------------------------------------------------
    def create_or_update_experiment(self, data: Any, json_encoder: Encoder = None,
                                    create: bool = True, max_attempts: int = 3,
                                    **kwargs: Any) -> Any:
        """Insert or update the experiment ``data`` (a ``DbExperimentData``); returns
        it as stored (``creation_datetime`` from its first save, ``updated_datetime`` now).

        Fields that are None leave the stored value as it is.
        """
        row = records.experiment_row(data, json_encoder)
        stored = self._storage.put_experiment(row, fill=row.keys())
        return records.experiment_data(stored, None)

    def experiment(self, experiment_id: str, json_decoder: Decoder = None) -> Any:
        """The stored ``DbExperimentData`` of ``experiment_id``."""
        return records.experiment_data(self._experiment_row(experiment_id), json_decoder)

    def experiments(self, limit: int | None = None, experiment_type: str | None = None,
                    backend_name: str | None = None, parent_id: str | None = None,
                    tags: str | Sequence[str] | None = None, tags_operator: str = "OR",
                    start_datetime_after: datetime | float | None = None,
                    start_datetime_before: datetime | float | None = None,
                    json_decoder: Decoder = None) -> list[Any]:
        """Stored experiments (``DbExperimentData``), newest first.

        ``tags``: a list (or comma-separated string); with ``tags_operator="OR"``
        an experiment needs one of them, with ``"AND"`` all.  The datetime
        bounds compare the creation time.  ``limit``: at most that many.
        """
        wanted = _tag_filter(tags, tags_operator)
        rows = self._storage.experiments(
            experiment_type=experiment_type, backend=backend_name, parent_id=parent_id,
            since=records.timestamp(start_datetime_after),
            until=records.timestamp(start_datetime_before))
        return _first(
            rows, limit,
            lambda row: wanted is None or wanted(records.loads(row["tags"], json_decoder, [])),
            lambda row: records.experiment_data(row, json_decoder))

    def delete_experiment(self, experiment_id: str) -> None:
        """Delete an experiment with its analysis results, figures, files and kept job
        results (not its child experiments, which are experiments of their own)."""
        if not self._storage.delete_experiment(experiment_id):
            raise not_found(f"experiment {experiment_id!r} is not in {self._where()}")

    def backends(self) -> list[str]:
        """Names of the backends stored experiments ran on."""
        names = {row["backend"] for row in self._storage.experiments()}
        return sorted(name for name in names if name)

    # -- analysis results ----------------------------------------------------------------
    def create_or_update_analysis_result(self, data: Any, json_encoder: Encoder = None,
                                         create: bool = True, max_attempts: int = 3) -> str:
        """Insert or update one analysis result (``DbAnalysisResultData``); returns its id.

        Its experiment must be stored first; without a backend name the result
        gets its experiment's.
        """
        self._put_results([data], json_encoder)
        return data.result_id

    def create_analysis_results(self, data: Sequence[Any], blocking: bool = True,
                                max_workers: int = 100, json_encoder: Encoder = None
                                ) -> dict[str, list]:
        """Insert or update many analysis results in one transaction.

        Returns ``{"running": [], "done": [saved], "fail": [{"data", "exception"}]}``;
        a result whose experiment is not stored fails alone.
        """
        results = list(data)
        known = self._storage.existing_experiments(
            getattr(result, "experiment_id", None) or "" for result in results)
        done, fail, rows = [], [], []
        for result in results:
            try:
                rows.append(self._result_row(result, json_encoder, known))
                done.append(result)
            except Exception as exc:  # noqa: BLE001 - reported per result, as the interface asks
                fail.append({"data": result, "exception": exc})
        if rows:
            self._storage.put_results(rows, fill=_RESULT_FILL)
        return {"running": [], "done": done, "fail": fail}

    def analysis_result(self, result_id: str, json_decoder: Decoder = None) -> Any:
        """The stored ``DbAnalysisResultData`` of ``result_id``."""
        row = self._storage.result(result_id)
        if row is None:
            raise not_found(f"analysis result {result_id!r} is not in {self._where()}")
        return records.analysis_result_data(row, json_decoder)

    def analysis_results(self, experiment_id: str | None = None, limit: int | None = None,
                         json_decoder: Decoder = None, *, backend_name: str | None = None,
                         device_components: str | Sequence[Any] | None = None,
                         device_components_operator: str | None = None,
                         result_type: str | None = None,
                         quality: Any = None, verified: bool | None = None,
                         tags: str | Sequence[str] | None = None, tags_operator: str = "OR",
                         created_at: tuple[Any, Any] | None = None) -> list[Any]:
        """Stored analysis results (``DbAnalysisResultData``) in the order first saved.

        Filters: ``experiment_id``, ``backend_name``, ``result_type``,
        ``verified``; ``quality`` one value or a list ("good", ``ResultQuality.BAD``,
        ...); ``device_components`` exactly those components (e.g. ``["Q0"]``),
        or at least those with ``device_components_operator="contains"``;
        ``tags`` as for :meth:`experiments`; ``created_at`` a ``(after, before)``
        pair of datetimes or unix seconds, either may be None.  ``limit``: the
        first that many.
        """
        qualities = None
        if quality is not None:
            given = [quality] if isinstance(quality, str) or not isinstance(
                quality, (list, tuple, set)) else list(quality)
            qualities = [records.quality_name(q) for q in given]
        since = until = None
        if created_at is not None:
            if not isinstance(created_at, (tuple, list)) or len(created_at) != 2:
                raise InvalidArgumentError(
                    f"created_at must be an (after, before) pair, got {created_at!r}")
            since, until = (records.timestamp(moment) for moment in created_at)
        wanted_tags = _tag_filter(tags, tags_operator)
        wanted_components = _component_filter(device_components, device_components_operator)
        rows = self._storage.results(
            experiment_id=experiment_id, backend_name=backend_name, result_type=result_type,
            qualities=qualities, verified=verified, since=since, until=until)

        def keep(row: Mapping[str, Any]) -> bool:
            return ((wanted_tags is None
                     or wanted_tags(records.loads(row["tags"], json_decoder, [])))
                    and (wanted_components is None
                         or wanted_components(json.loads(row["device_components"] or "[]"))))

        return _first(rows, limit, keep,
                      lambda row: records.analysis_result_data(row, json_decoder))

    def delete_analysis_result(self, result_id: str) -> None:
        """Delete one analysis result."""
        if not self._storage.delete_result(result_id):
            raise not_found(f"analysis result {result_id!r} is not in {self._where()}")

    # -- figures ------------------------------------------------------------------------
    def create_or_update_figure(self, experiment_id: str, figure: bytes | str,
                                figure_name: str | None = None, create: bool = True,
                                max_attempts: int = 3) -> tuple[str, int]:
        """Store a figure's bytes as they are (SVG, PNG, ...) under its name, replacing
        a figure of that name; returns ``(name, size)``.

        ``figure``: bytes, a path to a file, SVG text or a matplotlib figure
        (saved as SVG).  Without a name: the file's name, else a generated
        ``figure_<time>.svg``.
        """
        data, default_name = _figure_bytes(figure)
        name = figure_name or default_name
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"a figure needs a non-empty name, got {name!r}")
        self._require_experiment(experiment_id)
        self._storage.put_blob("figure", experiment_id, name, data)
        return name, len(data)

    def create_figures(self, experiment_id: str, figure_list: Iterable[tuple[Any, str]],
                       blocking: bool = True, max_workers: int = 100) -> dict[str, list]:
        """Store ``(figure, name)`` pairs; ``{"running": [], "done": [...], "fail": [...]}``."""
        done, fail = [], []
        for item in figure_list:
            try:
                figure, name = item
                self.create_or_update_figure(experiment_id, figure, name)
                done.append(item)
            except Exception as exc:  # noqa: BLE001 - reported per figure, as the interface asks
                fail.append({"data": item, "exception": exc})
        return {"running": [], "done": done, "fail": fail}

    def figure(self, experiment_id: str, figure_name: str,
               file_name: str | os.PathLike | None = None) -> bytes | int:
        """A figure's bytes; with ``file_name``, written there and the size returned."""
        data = self._storage.blob("figure", experiment_id, figure_name)
        if data is None:
            raise not_found(f"figure {figure_name!r} of experiment {experiment_id!r} is not "
                            f"in {self._where()}")
        if file_name is not None:
            with open(file_name, "wb") as out:
                return out.write(data)
        return data

    def delete_figure(self, experiment_id: str, figure_name: str) -> None:
        """Delete a figure; one that is not there is logged, not an error."""
        if not self._storage.delete_blob("figure", experiment_id, figure_name):
            LOG.info("figure %r of experiment %r was not stored; nothing to delete",
                     figure_name, experiment_id)

    # -- files --------------------------------------------------------------------------
    def file_upload(self, experiment_id: str, file_name: str, file_data: Any,
                    json_encoder: Encoder = None) -> None:
        """Store a file of an experiment, replacing one of that name.

        Names not ending in .json, .yaml or .zip get ".json".  Bytes and text
        are kept as they are; other values are written as JSON (by the
        encoder) or YAML, as the name says.
        """
        name = records.file_name(file_name)
        data = records.file_bytes(name, file_data, json_encoder)
        self._require_experiment(experiment_id)
        self._storage.put_blob("file", experiment_id, name, data)

    def file_download(self, experiment_id: str, file_name: str,
                      json_decoder: Decoder = None) -> Any:
        """A stored file: JSON and YAML decoded, zip and other files as bytes."""
        name = records.file_name(file_name)
        data = self._storage.blob("file", experiment_id, name)
        if data is None:
            raise not_found(f"file {name!r} of experiment {experiment_id!r} is not in "
                            f"{self._where()}")
        return records.file_value(name, data, json_decoder)

    def files(self, experiment_id: str) -> dict[str, list[dict[str, Any]]]:
        """``{"files": [{"Key": name, "Size": bytes, "LastModified": ISO time}, ...]}``."""
        return {"files": [
            {"Key": name, "Size": size,
             "LastModified": datetime.fromtimestamp(at).astimezone().isoformat()}
            for name, size, at in self._storage.blob_list("file", experiment_id)]}

    def file_delete(self, experiment_id: str, file_name: str) -> None:
        """Delete a stored file."""
        name = records.file_name(file_name)
        if not self._storage.delete_blob("file", experiment_id, name):
            raise not_found(f"file {name!r} of experiment {experiment_id!r} is not in "
                            f"{self._where()}")

    def experiment_has_file(self, experiment_id: str, file_name: str) -> bool:
        """Whether the experiment has a file of that name (".json" added as for uploads)."""
        return self._storage.has_blob("file", experiment_id, records.file_name(file_name))

    # -- beyond the service interface: raw job results ------------------------------------
    def save(self, exp_data: Any, **save_options: Any) -> list[str]:
        """Save ``exp_data`` through this service, with its job results kept too.

        Attaches the service if ``exp_data`` has none, keeps the results of its
        (and its children's) finished jobs for :attr:`provider`, then calls
        ``exp_data.save(suppress_errors=False, **save_options)``.  Returns the
        ids of the jobs kept.
        """
        if exp_data.service is None:
            exp_data.service = self
        elif exp_data.service is not self:
            raise InvalidArgumentError(
                f"experiment {exp_data.experiment_id} is attached to another service "
                f"({exp_data.service!r}); save it with that one")
        kept = self.save_job_results(exp_data)
        save_options.setdefault("suppress_errors", False)
        exp_data.save(**save_options)
        return kept

    def save_job_results(self, exp_data: Any) -> list[str]:
        """Keep the results of ``exp_data``'s finished jobs (and its children's) in the
        store, waiting for running ones; returns the job ids kept."""
        return save_job_results(self._storage, exp_data)

    def load(self, experiment_id: str) -> Any:
        """``ExperimentData.load(experiment_id, self, provider=self.provider)``: the
        experiment with its kept job results as ``data()``."""
        from qiskit_experiments.framework import ExperimentData

        return ExperimentData.load(experiment_id, self, provider=self._provider)

    # -- helpers -----------------------------------------------------------------------
    def _where(self) -> str:
        return f"the store at {self._store.display_url}"

    def _experiment_row(self, experiment_id: str) -> dict[str, Any]:
        row = self._storage.experiment(experiment_id)
        if row is None:
            raise not_found(f"experiment {experiment_id!r} is not in {self._where()}")
        return row

    def _require_experiment(self, experiment_id: str) -> None:
        if not self._storage.existing_experiments([experiment_id]):
            raise not_found(f"experiment {experiment_id!r} is not in {self._where()}; "
                            "save the experiment before its figures and files")

    def _result_row(self, data: Any, encoder: Encoder, known: set[str]) -> dict[str, Any]:
        experiment_id = getattr(data, "experiment_id", None)
        if experiment_id and experiment_id not in known:
            raise not_found(f"experiment {experiment_id!r} of analysis result "
                            f"{getattr(data, 'result_id', None)!r} is not in {self._where()}; "
                            "save the experiment first")
        backend = None
        if not getattr(data, "backend_name", None) and experiment_id:
            row = self._storage.experiment(experiment_id)
            backend = row["backend"] if row else None
        return records.result_row(data, encoder, backend)

    def _put_results(self, results: Sequence[Any], encoder: Encoder) -> None:
        known = self._storage.existing_experiments(
            getattr(result, "experiment_id", None) or "" for result in results)
        rows = [self._result_row(result, encoder, known) for result in results]
        self._storage.put_results(rows, fill=_RESULT_FILL)


#: Result columns an update overwrites only with values that are not None.
_RESULT_FILL = ("result_type", "result_data", "tags", "backend_name", "chisq",
                "creation_datetime")


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgumentError(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def _first(rows: Iterable[Mapping[str, Any]], limit: Any,
           keep: Callable[[Mapping[str, Any]], bool],
           convert: Callable[[Mapping[str, Any]], Any]) -> list[Any]:
    """``convert(row)`` of the rows ``keep`` accepts, in order, at most ``limit`` of
    them (None: all)."""
    most = None if limit is None else _limit(limit)
    found: list[Any] = []
    for row in rows:
        if most is not None and len(found) >= most:
            break
        if keep(row):
            found.append(convert(row))
    return found


def _tag_filter(tags: str | Sequence[str] | None, operator: str):
    """A test on a record's tags, or None for no filter."""
    if tags is None:
        return None
    wanted = [t.strip() for t in tags.split(",")] if isinstance(tags, str) else list(tags)
    op = str(operator).upper()
    if op not in ("OR", "AND"):
        raise InvalidArgumentError(f"tags_operator must be 'OR' or 'AND', got {operator!r}")
    if op == "OR":
        return lambda have: any(tag in have for tag in wanted)
    return lambda have: all(tag in have for tag in wanted)


def _component_filter(components: Any, operator: str | None):
    if components is None:
        return None
    wanted = set(records.component_names(components))
    if operator is None:
        return lambda have: set(have) == wanted
    if operator != "contains":
        raise InvalidArgumentError(
            f"device_components_operator must be None or 'contains', got {operator!r}")
    return lambda have: wanted <= set(have)


def _figure_bytes(figure: Any) -> tuple[bytes, str]:
    """A figure's bytes and the name it gets when none is given."""
    default = f"figure_{records.now().strftime('%Y%m%dT%H%M%S%f')}.svg"
    if isinstance(figure, (bytes, bytearray, memoryview)):
        return bytes(figure), default
    if isinstance(figure, (str, os.PathLike)):
        if os.path.isfile(figure):
            with open(figure, "rb") as file:
                return file.read(), os.path.basename(os.fspath(figure))
        if isinstance(figure, str) and figure.lstrip().startswith("<"):
            return figure.encode("utf-8"), default  # SVG text
        raise InvalidArgumentError(f"figure {figure!r} is neither bytes nor an existing file")
    if hasattr(figure, "savefig"):
        from qiskit_experiments.database_service.utils import plot_to_svg_bytes

        return plot_to_svg_bytes(figure), default
    raise InvalidArgumentError(
        f"a figure must be bytes, a file path or a matplotlib figure, got {type(figure).__name__}")
