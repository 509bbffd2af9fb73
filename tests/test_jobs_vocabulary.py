"""One job-status vocabulary and one backend-name helper for the experiment and jobs layers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qdataset import QDatasetError
from qdataset.job_status import (
    FINAL_STATUSES,
    STATUS_ALIASES,
    STATUSES,
    JobStatus,
    UnknownJobStatusError,
    backend_name,
    job_backend_name,
    job_status_name,
)
from qdataset.jobs import JobWatcher, RegistrationError, UnknownStatusError
from qdataset.jobs.records import status_name


def _spellings() -> list[tuple[str, str]]:
    """(spelling, canonical name) for every name and alias, in several cases."""
    pairs = [(name, name) for name in STATUSES] + list(STATUS_ALIASES.items())
    out = []
    for spelling, name in pairs:
        out += [(spelling, name), (spelling.lower(), name), (f" {spelling.title()} ", name)]
    return out


@pytest.mark.parametrize(("spelling", "name"), _spellings())
def test_both_layers_accept_the_same_names_and_aliases(spelling, name):
    from qdataset.experiment.status import JobStatus as ExperimentJobStatus

    assert job_status_name(spelling) == name
    assert status_name(spelling) == name  # the watcher's parser
    assert ExperimentJobStatus.coerce(spelling).name == name  # the experiment's parser


def test_the_aliases_are_the_union_of_what_both_layers_accepted():
    assert STATUS_ALIASES == {"CANCELED": "CANCELLED", "COMPLETED": "DONE",
                              "SUCCEEDED": "DONE", "FINISHED": "DONE", "FAILED": "ERROR"}
    assert STATUSES == ("INITIALIZING", "QUEUED", "VALIDATING", "RUNNING", "CANCELLED",
                        "DONE", "ERROR")


def test_qiskit_job_status_is_accepted_by_both_layers():
    from qiskit.providers import JobStatus as QiskitJobStatus

    from qdataset.experiment.status import JobStatus as ExperimentJobStatus

    for member in QiskitJobStatus:
        assert status_name(member) == member.name
        assert ExperimentJobStatus.coerce(member).name == member.name


@pytest.mark.parametrize("bad", ["OVER", "", None, 3, object()])
def test_unknown_status_is_one_error_in_both_layers(bad):
    from qdataset.experiment.status import JobStatus as ExperimentJobStatus

    with pytest.raises(UnknownJobStatusError, match="not a job status"):
        ExperimentJobStatus.coerce(bad)
    with pytest.raises(UnknownStatusError, match="not a job status") as caught:
        status_name(bad)
    # old except clauses keep working in both layers
    assert isinstance(caught.value, RegistrationError)
    assert isinstance(caught.value, UnknownJobStatusError)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, QDatasetError)


def test_one_definition_shared_by_both_layers():
    from qdataset.experiment import jobs as experiment_jobs
    from qdataset.experiment import status as experiment_status
    from qdataset.jobs import records

    assert experiment_status.JobStatus is JobStatus
    assert experiment_jobs.backend_name is backend_name
    assert experiment_jobs.job_backend_name is job_backend_name
    assert records.FINAL_STATUSES is FINAL_STATUSES
    assert {s.name for s in experiment_status.JOB_FINAL_STATES} == FINAL_STATUSES
    assert all(JobStatus[name].is_final for name in FINAL_STATUSES)


def test_the_vocabulary_module_imports_neither_layer():
    code = ("import sys, qdataset.job_status; "
            "bad = [m for m in sys.modules if m.startswith(('qdataset.jobs', "
            "'qdataset.experiment', 'qdataset.store', 'qiskit'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


class _V1Backend:
    def name(self) -> str:
        return "v1_backend"


class _V2Backend:
    name = "v2_backend"


class _Job:
    def __init__(self, backend) -> None:
        self._backend = backend

    def job_id(self) -> str:
        return f"job-{id(self)}"

    def backend(self):
        if isinstance(self._backend, Exception):
            raise self._backend
        return self._backend

    def status(self) -> str:
        return "QUEUED"


def test_backend_names():
    assert backend_name(_V1Backend()) == "v1_backend"
    assert backend_name(_V2Backend()) == "v2_backend"
    assert backend_name(None) is None
    assert job_backend_name(_Job(_V2Backend())) == "v2_backend"
    assert job_backend_name(_Job(RuntimeError("primitive jobs have no backend"))) is None
    assert job_backend_name(object()) is None


def test_watcher_records_the_backend_name_with_the_shared_helper(store):
    watcher = JobWatcher(store)
    v1, v2, broken = _Job(_V1Backend()), _Job(_V2Backend()), _Job(RuntimeError("no"))
    watcher.register_job([v1, v2, broken])
    infos = watcher.job_info([v1.job_id(), v2.job_id(), broken.job_id()])
    assert [info["backend"] for info in infos] == ["v1_backend", "v2_backend", None]


def test_watcher_accepts_aliases_in_notify_status(store):
    watcher = JobWatcher(store)
    watcher.register_job(_Job(_V2Backend()), notify_status=["finished", "Canceled", "FAILED"])
    (info,) = watcher.job_info()
    assert info["notify_status"] == ["DONE", "CANCELLED", "ERROR"]
