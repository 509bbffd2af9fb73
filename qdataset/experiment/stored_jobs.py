"""Raw job results in the store: a provider qiskit-experiments can load them from.

qiskit-experiments never sends job results to its experiment service; a loaded
``ExperimentData`` asks its *provider* for each job id (``provider.job(id)``)
and reads ``job.result()``.  :class:`StoreProvider` answers from the store, so
an experiment loaded in another process, without the backend that ran it, has
its ``data()`` and can be analysed again.  The results are put there by
:func:`save_job_results` (``ExperimentService.save``).

Both kinds of results qiskit-experiments reads are kept: primitive results
(``PrimitiveResult`` of sampler pubs: bit arrays or ndarrays per register, pub
metadata with the circuit metadata) and ``backend.run`` results (qiskit's
``Result``, through its own ``to_dict``/``from_dict``).  The JSON is written by
qiskit-experiments' ``ExperimentEncoder`` (arrays as .npy, so bit for bit).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from ..store.service_store import ServiceStorage
from .errors import UnsupportedResultError
from .service_errors import not_found

if TYPE_CHECKING:
    from ..store import Store

LOG = logging.getLogger(__name__)

PRIMITIVE = "primitive"
BACKEND = "backend"


# -- results <-> JSON-able values ------------------------------------------------------------
def encode_result(result: Any, job: Any = None) -> tuple[str, dict[str, Any]]:
    """(kind, value) for a job's result; ``job`` supplies circuit metadata that
    a primitive result left out (qiskit-experiments reads it from the job then)."""
    if hasattr(result, "results") and hasattr(result, "to_dict"):
        return BACKEND, result.to_dict()
    try:
        pubs = list(result)
    except TypeError:
        raise UnsupportedResultError(
            f"cannot keep a job result of type {type(result).__name__}: expected a qiskit "
            "Result or a PrimitiveResult") from None
    inputs = getattr(job, "inputs", None)
    circuits = inputs.get("pubs") if isinstance(inputs, dict) else None
    encoded = []
    for index, pub in enumerate(pubs):
        metadata = dict(getattr(pub, "metadata", None) or {})
        if "circuit_metadata" not in metadata and circuits is not None:
            circuit = circuits[index][0] if isinstance(circuits[index], tuple) else circuits[index]
            metadata["circuit_metadata"] = getattr(circuit, "metadata", {})
        fields = {}
        for name, value in pub.data.items():
            if hasattr(value, "num_bits") and hasattr(value, "array"):
                fields[name] = {"bits": value.array, "num_bits": int(value.num_bits)}
            else:
                fields[name] = {"array": value}
        encoded.append({"class": type(pub).__name__, "shape": list(pub.data.shape),
                        "fields": fields, "metadata": metadata})
    return PRIMITIVE, {"pubs": encoded, "metadata": dict(getattr(result, "metadata", {}) or {})}


def decode_result(kind: str, value: dict[str, Any]) -> Any:
    """The qiskit result object :func:`encode_result` was given."""
    if kind == BACKEND:
        from qiskit.result import Result

        return Result.from_dict(value)
    from qiskit.primitives.containers import (
        BitArray,
        DataBin,
        PrimitiveResult,
        PubResult,
        SamplerPubResult,
    )

    pubs = []
    for pub in value["pubs"]:
        fields = {
            name: (BitArray(field["bits"], field["num_bits"]) if "bits" in field
                   else field["array"])
            for name, field in pub["fields"].items()
        }
        cls = SamplerPubResult if pub["class"] == "SamplerPubResult" else PubResult
        pubs.append(cls(DataBin(shape=tuple(pub["shape"]), **fields), metadata=pub["metadata"]))
    return PrimitiveResult(pubs, metadata=value["metadata"])


# -- the provider -------------------------------------------------------------------------------
class StoredJob:
    """A finished job read back from the store (the job interface qiskit-experiments uses)."""

    def __init__(self, job_id: str, backend_name: str | None, result: Any) -> None:
        self._job_id = job_id
        self._result = result
        self.backend_name = backend_name

    def job_id(self) -> str:
        return self._job_id

    def status(self) -> Any:
        from qiskit.providers import JobStatus

        return JobStatus.DONE

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        return self._result

    def cancel(self) -> bool:
        return False

    def error_message(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<StoredJob {self._job_id!r} backend={self.backend_name!r}>"


class StoreProvider:
    """Jobs whose results were kept in a store, by id: pass it as ``provider=``.

    >>> provider = StoreProvider(store)     # or ExperimentService(...).provider
    >>> exp = ExperimentData.load(experiment_id, service, provider=provider)
    >>> exp.data()                          # the job results, without the backend
    """

    def __init__(self, store: Store) -> None:
        self._storage = ServiceStorage(store)

    def job(self, job_id: str) -> StoredJob:
        """The stored job ``job_id``; ExperimentEntryNotFound if none was kept."""
        row = self._storage.job_result(job_id)
        if row is None:
            raise not_found(f"no results of job {job_id!r} are kept in this store "
                            "(they are saved by ExperimentService.save)")
        from qiskit_experiments.framework.json import ExperimentDecoder

        value = json.loads(row["result"], cls=ExperimentDecoder)
        return StoredJob(job_id, row["backend_name"], decode_result(row["kind"], value))

    def job_ids(self, experiment_id: str | None = None) -> list[str]:
        """Ids of the jobs kept (of one experiment's, if given), in saved order."""
        return self._storage.job_ids(experiment_id)


def save_job_results(storage: ServiceStorage, exp_data: Any) -> list[str]:
    """Keep the results of every finished job of ``exp_data`` and its children.

    Waits for running jobs (through ``job.result()``); jobs that failed or were
    cancelled are left out with a warning.  Returns the ids kept.
    """
    from qiskit_experiments.framework.json import ExperimentEncoder

    rows, seen = [], set()
    pending = [exp_data]
    while pending:
        data = pending.pop(0)
        pending.extend(data.child_data())
        for job in data.jobs():
            if job is None or job.job_id() in seen:
                continue
            seen.add(job.job_id())
            try:
                result = job.result()
            except Exception as exc:  # noqa: BLE001 - a failed job has no result to keep
                LOG.warning("job %s has no result to keep: %s", job.job_id(), exc)
                continue
            kind, value = encode_result(result, job)
            rows.append({"job_id": job.job_id(), "experiment_id": data.experiment_id,
                         "backend_name": data.backend_name, "kind": kind,
                         "result": json.dumps(value, cls=ExperimentEncoder)})
    if rows:
        storage.put_job_results(rows)
    return [row["job_id"] for row in rows]
