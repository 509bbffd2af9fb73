"""Status enums of the experiment layer and the rules that combine them.

:class:`JobStatus` and its aliases are defined in :mod:`qdataset.job_status`.
The rules follow qiskit-experiments: an experiment with no content is EMPTY;
otherwise errors, then cancellations, take priority; unfinished jobs give the
job state; finished jobs with unfinished analysis give POST_PROCESSING.

>>> combine_job_statuses([JobStatus.DONE, JobStatus.RUNNING])
<JobStatus.RUNNING: 'job is actively running'>
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

# The job vocabulary is shared with qdataset.jobs; re-exported here for the
# experiment layer's modules and users who import it from this module.
from ..job_status import JobStatus


class ExperimentStatus(enum.Enum):
    """Status of an experiment as a whole."""

    EMPTY = "experiment data is empty"
    INITIALIZING = "experiment jobs are being initialized"
    VALIDATING = "experiment jobs are validating"
    QUEUED = "experiment jobs are queued"
    RUNNING = "experiment jobs are actively running"
    CANCELLED = "experiment jobs or analysis have been cancelled"
    POST_PROCESSING = "experiment analysis is actively running"
    DONE = "experiment jobs and analysis have successfully run"
    ERROR = "experiment jobs or analysis incurred an error"


class AnalysisStatus(enum.Enum):
    """Status of one analysis callback (or of all of them, combined)."""

    QUEUED = "analysis callback is queued"
    RUNNING = "analysis callback is actively running"
    CANCELLED = "analysis callback has been cancelled"
    DONE = "analysis callback has successfully run"
    ERROR = "analysis callback incurred an error"


JOB_FINAL_STATES = frozenset({JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED})

#: Highest priority first: the combined status is the first one present.
_JOB_PRIORITY = (JobStatus.ERROR, JobStatus.CANCELLED, JobStatus.RUNNING, JobStatus.QUEUED,
                 JobStatus.VALIDATING, JobStatus.INITIALIZING)
_ANALYSIS_PRIORITY = (AnalysisStatus.ERROR, AnalysisStatus.CANCELLED, AnalysisStatus.RUNNING,
                      AnalysisStatus.QUEUED)


def combine_job_statuses(statuses: Iterable[JobStatus]) -> JobStatus:
    """The status of a set of jobs: DONE only if all are DONE (or there are none)."""
    present = set(statuses)
    for status in _JOB_PRIORITY:
        if status in present:
            return status
    return JobStatus.DONE


def combine_analysis_statuses(statuses: Iterable[AnalysisStatus]) -> AnalysisStatus:
    """The status of a set of callbacks: DONE only if all are DONE (or there are none)."""
    present = set(statuses)
    for status in _ANALYSIS_PRIORITY:
        if status in present:
            return status
    return AnalysisStatus.DONE


_FROM_JOB = {
    JobStatus.INITIALIZING: ExperimentStatus.INITIALIZING,
    JobStatus.QUEUED: ExperimentStatus.QUEUED,
    JobStatus.VALIDATING: ExperimentStatus.VALIDATING,
    JobStatus.RUNNING: ExperimentStatus.RUNNING,
}


def experiment_status(empty: bool, job: JobStatus, analysis: AnalysisStatus) -> ExperimentStatus:
    """The experiment status from the combined job and analysis statuses.

    >>> experiment_status(False, JobStatus.DONE, AnalysisStatus.RUNNING).name
    'POST_PROCESSING'
    """
    if empty:
        return ExperimentStatus.EMPTY
    if job is JobStatus.ERROR or analysis is AnalysisStatus.ERROR:
        return ExperimentStatus.ERROR
    if job is JobStatus.CANCELLED or analysis is AnalysisStatus.CANCELLED:
        return ExperimentStatus.CANCELLED
    if job in _FROM_JOB:
        return _FROM_JOB[job]
    if analysis is AnalysisStatus.DONE:
        return ExperimentStatus.DONE
    return ExperimentStatus.POST_PROCESSING


__all__ = [
    "JOB_FINAL_STATES",
    "AnalysisStatus",
    "ExperimentStatus",
    "JobStatus",
    "combine_analysis_statuses",
    "combine_job_statuses",
    "experiment_status",
]
