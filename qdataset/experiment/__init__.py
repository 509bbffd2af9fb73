"""The experiment layer: qiskit jobs, analysis results and figures beside the data.

>>> from qdataset.experiment import ExperimentData, AnalysisResult
>>> exp = ExperimentData(store=store, backend=backend, experiment_type="bell")
>>> exp.add_jobs(backend.run(circuits, shots=1000))
>>> exp.block_for_results().status().name
'DONE'

qiskit, qiskit-aer and matplotlib (the ``experiment`` extra) are never
imported by this package: jobs and results are read by duck typing, and
matplotlib figures are saved through their own ``savefig``.

``ExperimentService`` is the service qiskit-experiments saves its own
``ExperimentData`` through (``exp_data.service = ExperimentService(url)``);
it imports qiskit-experiments only when it is called.
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
from .service import ExperimentService
from .status import AnalysisStatus, ExperimentStatus, JobStatus
from .stored_jobs import StoredJob, StoreProvider

__all__ = [
    "AnalysisResult",
    "AnalysisStatus",
    "ExperimentClosedError",
    "ExperimentData",
    "ExperimentDataError",
    "ExperimentEntryNotFound",
    "ExperimentNotFoundError",
    "ExperimentService",
    "ExperimentStatus",
    "FigureData",
    "InvalidAnalysisResultError",
    "InvalidIndexError",
    "JobStatus",
    "StoreProvider",
    "StoredJob",
    "UnsupportedResultError",
]
