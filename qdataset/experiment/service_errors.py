"""The not-found error of the experiment service: qiskit-experiments' own class,
so its callers catch it, and qdataset's, so ours do."""

from __future__ import annotations

from functools import cache

from .errors import ExperimentEntryNotFound


@cache
def entry_not_found_class() -> type[Exception]:
    """A subclass of both ``qiskit_experiments...ExperimentEntryNotFound`` and
    :class:`qdataset.experiment.ExperimentEntryNotFound` (made on first use, so
    importing qdataset never imports qiskit-experiments)."""
    from qiskit_experiments.database_service import ExperimentEntryNotFound as QEEntryNotFound

    return type("ServiceEntryNotFound", (QEEntryNotFound, ExperimentEntryNotFound), {
        "__module__": __name__,
        "__doc__": "No experiment, analysis result, figure, file or job with the given id "
                   "is stored in the service's store.",
    })


def not_found(message: str) -> Exception:
    """The error to raise when an id or name is unknown; ``message`` names it."""
    return entry_not_found_class()(message)
