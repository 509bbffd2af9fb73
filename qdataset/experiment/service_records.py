"""qiskit-experiments' service data classes <-> rows of the service tables.

``DbExperimentData`` and ``DbAnalysisResultData`` become dicts of column
values (JSON as text, written by the encoder the client passes, NaN and
infinities included; datetimes as ISO text as given) and come back from them.
File contents (JSON, YAML, zip bytes) are encoded here too.  qiskit-experiments
is imported only inside the functions that build its classes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidArgumentError

#: Columns of qe_experiments that mirror DbExperimentData's fields one to one.
EXPERIMENT_TEXT = ("parent_id", "experiment_type", "backend", "share_level", "notes",
                   "hub", "group", "project", "owner")
EXPERIMENT_LISTS = ("tags", "job_ids", "figure_names")
EXPERIMENT_TIMES = ("creation_datetime", "start_datetime", "end_datetime", "updated_datetime")

#: File name endings the service keeps as they are; any other name gets ".json".
FILE_SUFFIXES = (".json", ".yaml", ".zip")


def encoder_or_default(encoder: type[json.JSONEncoder] | None) -> type[json.JSONEncoder]:
    if encoder is not None:
        return encoder
    from qiskit_experiments.framework.json import ExperimentEncoder

    return ExperimentEncoder


def decoder_or_default(decoder: type[json.JSONDecoder] | None) -> type[json.JSONDecoder]:
    if decoder is not None:
        return decoder
    from qiskit_experiments.framework.json import ExperimentDecoder

    return ExperimentDecoder


def dumps(value: Any, encoder: type[json.JSONEncoder] | None = None) -> str:
    """JSON text of ``value`` (NaN and infinities written as JSON's extensions)."""
    return json.dumps(value, cls=encoder_or_default(encoder))


def loads(text: str | None, decoder: type[json.JSONDecoder] | None = None,
          default: Any = None) -> Any:
    if text is None:
        return default
    return json.loads(text, cls=decoder_or_default(decoder))


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidArgumentError(f"expected a datetime, got {moment!r}")
    return moment.isoformat()


def from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def now() -> datetime:
    return datetime.now(UTC)


# -- experiments ---------------------------------------------------------------------
def experiment_row(data: Any, encoder: type[json.JSONEncoder] | None) -> dict[str, Any]:
    """Column values of a ``DbExperimentData``; None where the client sent None."""
    experiment_id = getattr(data, "experiment_id", None)
    if not isinstance(experiment_id, str) or not experiment_id:
        raise InvalidArgumentError(
            f"an experiment needs a non-empty string experiment_id, got {experiment_id!r}")
    row: dict[str, Any] = {"experiment_id": experiment_id}
    for name in EXPERIMENT_TEXT:
        row[name] = getattr(data, name, None)
    for name in EXPERIMENT_LISTS:
        value = getattr(data, name, None)
        row[name] = None if value is None else dumps(list(value), encoder)
    metadata = getattr(data, "metadata", None)
    row["metadata"] = None if metadata is None else dumps(metadata, encoder)
    for name in EXPERIMENT_TIMES:
        row[name] = iso(getattr(data, name, None))
    created = getattr(data, "creation_datetime", None) or now()
    row["creation_datetime"] = iso(created)
    row["updated_datetime"] = iso(now())
    row["created_at"] = created.timestamp()
    return row


def experiment_data(row: dict[str, Any], decoder: type[json.JSONDecoder] | None) -> Any:
    """A ``DbExperimentData`` from a stored row."""
    from qiskit_experiments.database_service import DbExperimentData

    values: dict[str, Any] = {"experiment_id": row["experiment_id"]}
    for name in EXPERIMENT_TEXT:
        values[name] = row[name]
    for name in EXPERIMENT_LISTS:
        values[name] = loads(row[name], decoder, default=[])
    values["metadata"] = loads(row["metadata"], decoder, default={})
    for name in EXPERIMENT_TIMES:
        values[name] = from_iso(row[name])
    return DbExperimentData(**values)


# -- analysis results ------------------------------------------------------------------
def component_names(components: Any) -> list[str]:
    """Device components (``Qubit(0)``, "Q0", or a list of them) as names."""
    if components is None:
        return []
    if isinstance(components, str) or not isinstance(components, (list, tuple)):
        components = [components]
    return [str(component) for component in components]


def quality_name(quality: Any) -> str:
    from qiskit_experiments.database_service import ResultQuality

    if isinstance(quality, ResultQuality):
        return quality.value
    return ResultQuality.from_str(quality).value


def result_row(data: Any, encoder: type[json.JSONEncoder] | None,
               backend: str | None) -> dict[str, Any]:
    """Column values of a ``DbAnalysisResultData``; ``backend``: the experiment's,
    used when the result names none."""
    result_id = getattr(data, "result_id", None)
    if not isinstance(result_id, str) or not result_id:
        raise InvalidArgumentError(
            f"an analysis result needs a non-empty string result_id, got {result_id!r}")
    if not getattr(data, "experiment_id", None):
        raise InvalidArgumentError(f"analysis result {result_id} names no experiment_id")
    # Without a creation time the first save's (created_at) stands for it.
    given = getattr(data, "creation_datetime", None)
    created = given or now()
    result_data = getattr(data, "result_data", None)
    tags = getattr(data, "tags", None)
    chisq = getattr(data, "chisq", None)
    verified = getattr(data, "verified", None)
    return {
        "result_id": result_id,
        "experiment_id": data.experiment_id,
        "result_type": getattr(data, "result_type", None),
        "result_data": None if result_data is None else dumps(result_data, encoder),
        "device_components": json.dumps(component_names(data.device_components)),
        "quality": quality_name(getattr(data, "quality", None)),
        "verified": bool(verified) if verified is not None else False,
        "tags": None if tags is None else dumps(list(tags), encoder),
        "backend_name": getattr(data, "backend_name", None) or backend,
        "chisq": None if chisq is None else json.dumps(float(chisq)),
        "creation_datetime": iso(given),
        "updated_datetime": iso(now()),
        "created_at": created.timestamp(),
    }


def analysis_result_data(row: dict[str, Any], decoder: type[json.JSONDecoder] | None) -> Any:
    """A ``DbAnalysisResultData`` from a stored row."""
    from qiskit_experiments.database_service import DbAnalysisResultData, ResultQuality
    from qiskit_experiments.database_service.device_component import to_component

    return DbAnalysisResultData(
        result_id=row["result_id"],
        experiment_id=row["experiment_id"],
        result_type=row["result_type"],
        result_data=loads(row["result_data"], decoder, default={}),
        device_components=[to_component(name)
                           for name in json.loads(row["device_components"] or "[]")],
        quality=ResultQuality.from_str(row["quality"]),
        verified=bool(row["verified"]),
        tags=loads(row["tags"], decoder, default=[]),
        backend_name=row["backend_name"],
        creation_datetime=(from_iso(row["creation_datetime"])
                           or datetime.fromtimestamp(row["created_at"], UTC)),
        updated_datetime=from_iso(row["updated_datetime"]),
        chisq=None if row["chisq"] is None else json.loads(row["chisq"]),
    )


# -- files -------------------------------------------------------------------------------
def file_name(name: str) -> str:
    """The stored name: as given if it ends in .json, .yaml or .zip, else with ".json"."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a file needs a non-empty string name, got {name!r}")
    return name if name.endswith(FILE_SUFFIXES) else name + ".json"


def file_bytes(name: str, data: Any, encoder: type[json.JSONEncoder] | None) -> bytes:
    """What is stored for ``data`` under ``name``: bytes as given, text as UTF-8,
    other values as JSON (.json) or YAML (.yaml) text."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if name.endswith(".zip"):
        raise InvalidArgumentError(f"file {name!r}: a .zip file takes bytes, "
                                   f"got {type(data).__name__}")
    text = dumps(data, encoder)
    if name.endswith(".yaml"):
        yaml = _yaml(name)
        # Through JSON first: the encoder makes plain values of numpy arrays,
        # enums and the like, which YAML's safe dumper can write.
        text = yaml.safe_dump(json.loads(text), sort_keys=False)
    return text.encode("utf-8")


def file_value(name: str, data: bytes, decoder: type[json.JSONDecoder] | None) -> Any:
    """A stored file as the client reads it: JSON and YAML decoded, other bytes as they are."""
    if name.endswith(".json"):
        return loads(data.decode("utf-8"), decoder)
    if name.endswith(".yaml"):
        value = _yaml(name).safe_load(data.decode("utf-8"))
        # Back through the decoder, which revives what the encoder wrote.
        return loads(json.dumps(value), decoder)
    return data


def _yaml(name: str) -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML comes with the extra
        raise InvalidArgumentError(
            f"file {name!r}: YAML files need PyYAML (pip install pyyaml)") from exc
    return yaml


def timestamp(moment: datetime | float | None) -> float | None:
    """Unix seconds of a datetime (naive: local time) or a number."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.timestamp()
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return float(moment)
    raise InvalidArgumentError(f"expected a datetime or unix seconds, got {moment!r}")


def now_seconds() -> float:
    return time.time()
