"""Errors of the experiment layer; all are :class:`qdataset.errors.QDatasetError`."""

from __future__ import annotations

from ..errors import QDatasetError


class ExperimentDataError(QDatasetError):
    """An ExperimentData operation cannot be done as asked."""


class ExperimentEntryNotFound(ExperimentDataError, LookupError):
    """No analysis result, figure, child or data entry matches the requested key."""


class ExperimentNotFoundError(ExperimentEntryNotFound):
    """No experiment with the requested id is stored in the database."""


class UnsupportedResultError(ExperimentDataError, TypeError):
    """A job result or data item has a type the experiment layer cannot store."""


__all__ = [
    "ExperimentDataError",
    "ExperimentEntryNotFound",
    "ExperimentNotFoundError",
    "UnsupportedResultError",
]
