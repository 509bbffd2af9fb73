"""The experiment layer: qiskit jobs, analysis results and figures beside the data.

>>> from qdataset.experiment import ExperimentData, AnalysisResult
>>> exp = ExperimentData(store=store, backend=backend, experiment_type="bell")
>>> exp.add_jobs(backend.run(circuits, shots=1000))
>>> exp.block_for_results().status().name
'DONE'

qiskit, qiskit-aer and matplotlib (the ``experiment`` extra) are never
imported by this package: jobs and results are read by duck typing, and
matplotlib figures are saved through their own ``savefig``.
"""

from __future__ import annotations

from .errors import (
    ExperimentClosedError,
    ExperimentDataError,
    ExperimentEntryNotFound,
    ExperimentNotFoundError,
    InvalidAnalysisResultError,
    InvalidIndexError,
    UnsupportedResultError,
)
from .experiment_data import ExperimentData
from .figures import FigureData
from .results import AnalysisResult
from .status import AnalysisStatus, ExperimentStatus, JobStatus

__all__ = [
    "AnalysisResult",
    "AnalysisStatus",
    "ExperimentClosedError",
    "ExperimentData",
    "ExperimentDataError",
    "ExperimentEntryNotFound",
    "ExperimentNotFoundError",
    "ExperimentStatus",
    "FigureData",
    "InvalidAnalysisResultError",
    "InvalidIndexError",
    "JobStatus",
    "UnsupportedResultError",
]
