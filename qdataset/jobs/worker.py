"""The worker: claim jobs from a queue and run them on qiskit-aer.

A job payload for the worker is a JSON object::

    {"format": "qpy" | "qasm3",       # how the circuits are encoded
     "circuits": ["...", ...],        # base64 QPY (one circuit each) or OpenQASM 3 text
     "shots": 1000,
     "seed_simulator": 7,             # optional
     "memory": false}                 # optional: per-shot bitstrings

The result stored for a DONE job is Aer's ``Result.to_dict()`` (as JSON), so
``qiskit.result.Result.from_dict(queue.result(job_id))`` gives back a real
qiskit Result.  qiskit is imported only when a job runs.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

from ._lease import LeaseRenewal
from .errors import (
    BackendNotFoundError,
    JobConfigError,
    LeaseLostError,
    PayloadError,
    SimulationError,
)
from .records import to_json

LOG = logging.getLogger("qdataset.jobs")

FORMATS = ("qpy", "qasm3")
_OPTIONAL = {"seed_simulator": int, "memory": bool}


def check_payload(payload: Any, max_shots: int | None = None) -> dict[str, Any]:
    """The payload's format, circuits, shots and options, checked (PayloadError if not).

    >>> check_payload({"format": "qasm3", "circuits": ["OPENQASM 3.0; ..."], "shots": 100})
    """
    if not isinstance(payload, Mapping):
        raise PayloadError(f"a worker payload must be a dict, not {type(payload).__name__}")
    fmt = payload.get("format")
    if fmt not in FORMATS:
        raise PayloadError(
            f"payload 'format' is {fmt!r}; use 'qpy' (base64 QPY) or 'qasm3' (OpenQASM 3)"
        )
    circuits = payload.get("circuits")
    if isinstance(circuits, str):
        circuits = [circuits]
    if not isinstance(circuits, list) or not circuits \
            or not all(isinstance(c, str) and c for c in circuits):
        raise PayloadError(
            "payload 'circuits' must be a non-empty list of strings "
            "(encode circuits with qdataset.jobs.encode_circuits)"
        )
    shots = payload.get("shots")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise PayloadError(f"payload 'shots' must be a positive integer, not {shots!r}")
    if max_shots is not None and shots > max_shots:
        raise PayloadError(f"payload asks for {shots} shots; this backend allows {max_shots}")
    options: dict[str, Any] = {}
    for key, kind in _OPTIONAL.items():
        if payload.get(key) is not None:
            value = payload[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise PayloadError(f"payload {key!r} must be {kind.__name__}, not {value!r}")
            options[key] = value
    unknown = set(payload) - {"format", "circuits", "shots", *_OPTIONAL}
    if unknown:
        raise PayloadError(
            f"payload has unknown keys {sorted(unknown)}; allowed: format, circuits, shots, "
            f"{', '.join(_OPTIONAL)}"
        )
    return {"format": fmt, "circuits": circuits, "shots": shots, "options": options}


def encode_circuits(circuits: Any, format: str = "qpy") -> list[str]:
    """Circuits as payload strings: base64 QPY (default) or OpenQASM 3 text.

    >>> payload = {"format": "qpy", "circuits": encode_circuits([bell]), "shots": 1000}
    """
    from qiskit import QuantumCircuit, qasm3, qpy

    if isinstance(circuits, QuantumCircuit):
        circuits = [circuits]
    circuits = list(circuits)
    if not circuits or not all(isinstance(c, QuantumCircuit) for c in circuits):
        raise PayloadError("encode_circuits needs one QuantumCircuit or a list of them")
    if format == "qasm3":
        return [qasm3.dumps(c) for c in circuits]
    if format != "qpy":
        raise PayloadError(f"format {format!r} is unknown; use 'qpy' or 'qasm3'")
    encoded = []
    for circuit in circuits:
        buffer = io.BytesIO()
        qpy.dump(circuit, buffer)
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def decode_circuits(fmt: str, circuits: list[str]) -> list[Any]:
    """QuantumCircuits from payload strings; PayloadError names the bad one."""
    from qiskit import qasm3, qpy

    decoded = []
    for i, text in enumerate(circuits):
        try:
            if fmt == "qpy":
                decoded.extend(qpy.load(io.BytesIO(base64.b64decode(text, validate=True))))
            else:
                decoded.append(_load_qasm3(qasm3, text))
        except Exception as exc:  # noqa: BLE001 - any parser error means a bad payload
            raise PayloadError(
                f"circuit {i} is not valid {'base64 QPY' if fmt == 'qpy' else 'OpenQASM 3'}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return decoded


def _load_qasm3(qasm3: Any, text: str) -> Any:
    try:
        import qiskit_qasm3_import  # noqa: F401 - the reference importer, if installed
    except ImportError:
        with warnings.catch_warnings():  # qiskit's built-in (Rust) importer
            warnings.simplefilter("ignore")
            return qasm3.loads_experimental(text)
    return qasm3.loads(text)


def run_payload(payload: Mapping[str, Any], simulator: Any = None, *,
                max_shots: int | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Run a worker payload on Aer; returns the result dict (``Result.to_dict()``, JSON-able)."""
    import json

    checked = check_payload(payload, max_shots)
    circuits = decode_circuits(checked["format"], checked["circuits"])
    if simulator is None:
        from qiskit_aer import AerSimulator

        simulator = AerSimulator()
    from qiskit import transpile

    circuits = transpile(circuits, simulator)
    result = simulator.run(circuits, shots=checked["shots"], **checked["options"]).result()
    if not result.success:
        raise SimulationError(f"the simulation failed: {result.status}")
    data = json.loads(to_json(result.to_dict(), "a job result"))
    if job_id is not None:
        data["job_id"] = job_id
    return data


def default_config(backend: str) -> dict[str, Any]:
    """The configuration a worker uploads for a backend that has none."""
    import qiskit_aer

    return {"display_name": backend, "backend_version": qiskit_aer.__version__,
            "simulator": True, "operational": True, "max_shots": 1_000_000,
            "description": "qiskit-aer, run by qdataset worker"}


class Worker:
    """Claim jobs of ``backend`` from ``queue`` and run them on qiskit-aer.

    A job that fails (bad payload, simulator error) is marked ERROR with the
    reason, and the worker goes on with the next one.  While a job runs, a
    thread renews its lease (``lease_timeout / 3`` apart); a job whose lease
    was lost meanwhile (the worker stalled, the database was unreachable for
    longer than the lease) was requeued for another worker, so its result is
    dropped (``lost`` counts them).  :meth:`execute` runs one payload; a
    subclass may override it to run jobs on something other than Aer.

    >>> Worker(JobQueue(store), "aer").run(once=True)     # drain the queue, then return
    3
    """

    def __init__(self, queue: Any, backend: str = "aer", *, poll: float = 1.0,
                 name: str | None = None, simulator_options: Mapping[str, Any] | None = None
                 ) -> None:
        if poll <= 0:
            raise JobConfigError(f"poll must be a positive number of seconds, not {poll!r}")
        self.queue = queue
        self.backend = backend
        self.poll = poll
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.simulator_options = dict(simulator_options or {})
        self._simulator: Any = None
        self.stop_event = threading.Event()
        self.done = 0
        self.failed = 0
        self.lost = 0
        #: Seconds between lease renewals while a job runs (None: a third of the lease).
        self.renew_interval: float | None = None
        try:
            config = queue.get_config(backend)
        except BackendNotFoundError:
            config = default_config(backend)
            queue.upload_config(backend, config)
        self.max_shots = config.get("max_shots")

    def __repr__(self) -> str:
        return f"<Worker {self.name} backend={self.backend!r} on {self.queue!r}>"

    @property
    def simulator(self) -> Any:
        if self._simulator is None:
            from qiskit_aer import AerSimulator

            self._simulator = AerSimulator(**self.simulator_options)
        return self._simulator

    def execute(self, claim: Any) -> dict[str, Any]:
        """Run one claimed job and return its result (a JSON-able dict); raise if it fails."""
        return run_payload(claim.payload, self.simulator, max_shots=self.max_shots,
                           job_id=claim.job_id)

    def run_once(self) -> str | None:
        """Claim and run one job; returns its id, or None when the queue is empty."""
        claim = self.queue.claim_next(self.backend, worker=self.name)
        if claim is None:
            return None
        started = time.perf_counter()
        token = getattr(claim, "token", None)
        try:
            with LeaseRenewal(self.queue, claim, self.renew_interval):
                result = self.execute(claim)
            self.queue.finish(claim.job_id, result, token=token)
        except LeaseLostError as exc:
            self.lost += 1
            LOG.warning("qdataset worker: result of job %s dropped: %s", claim.job_id, exc)
        except Exception as exc:  # noqa: BLE001 - a bad job must not stop the worker
            self.failed += 1
            message = f"{type(exc).__name__}: {exc}"
            LOG.warning("qdataset worker: job %s failed: %s", claim.job_id, message)
            try:
                self.queue.fail(claim.job_id, message, token=token)
            except LeaseLostError as lost:
                self.lost += 1
                LOG.warning("qdataset worker: failure of job %s dropped: %s", claim.job_id,
                            lost)
            except Exception:  # noqa: BLE001 - e.g. the job was cancelled meanwhile
                LOG.exception("qdataset worker: could not record the failure of %s",
                              claim.job_id)
        else:
            self.done += 1
            LOG.info("qdataset worker: job %s done in %.3f s", claim.job_id,
                     time.perf_counter() - started)
        return claim.job_id

    def run(self, once: bool = False, max_jobs: int | None = None) -> int:
        """Process jobs until stopped (``stop()``, Ctrl-C); returns how many were processed.

        ``once``: return as soon as the queue is empty instead of polling for more.
        """
        processed = 0
        while not self.stop_event.is_set():
            if max_jobs is not None and processed >= max_jobs:
                break
            job_id = self.run_once()
            if job_id is not None:
                processed += 1
                continue
            if once:
                break
            self.stop_event.wait(self.poll)
        return processed

    def stop(self) -> None:
        """Make :meth:`run` return after the current job."""
        self.stop_event.set()
