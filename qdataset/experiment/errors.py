"""Errors of the experiment layer; all are :class:`qdataset.errors.QDatasetError`.

Those that replace a built-in exception users may already catch also derive
from it (``LookupError``, ``TypeError``, ``ValueError``).
"""

from __future__ import annotations

from ..errors import QDatasetError


class ExperimentDataError(QDatasetError):
    """An ExperimentData operation cannot be done as asked."""


class ExperimentEntryNotFound(ExperimentDataError, LookupError):
    """No analysis result, figure, child or data entry matches the requested key."""


class ExperimentNotFoundError(ExperimentEntryNotFound):
    """No experiment with the requested id is stored in the database."""


class UnsupportedResultError(ExperimentDataError, TypeError):
    """A job result, data item or value has a type the experiment layer cannot store."""


class InvalidIndexError(ExperimentDataError, TypeError):
    """An index or key has a type the lookup does not accept (e.g. ``exp.data(1.5)``)."""


class InvalidAnalysisResultError(ExperimentDataError, ValueError):
    """An AnalysisResult was constructed with invalid arguments."""


class ExperimentClosedError(ExperimentDataError):
    """The experiment was closed: it accepts no more jobs or analysis callbacks."""


__all__ = [
    "ExperimentClosedError",
    "ExperimentDataError",
    "ExperimentEntryNotFound",
    "ExperimentNotFoundError",
    "InvalidAnalysisResultError",
    "InvalidIndexError",
    "UnsupportedResultError",
]
