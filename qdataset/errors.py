"""The exceptions qdataset raises.

Every error is a :class:`QDatasetError`; the specific subclasses also derive
from the matching built-in exception (``KeyError``, ``TypeError``, ...) so
code written against plain Python conventions keeps working.  Messages name
the run or parameter concerned and say what to do about it.
"""

from __future__ import annotations


class QDatasetError(Exception):
    """Base class of every error raised by qdataset."""


class StoreError(QDatasetError):
    """The database could not be opened or used."""


class StoreClosedError(StoreError):
    """The store was closed; open a new one with ``connect()`` to go on."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this qdataset understands."""


class StorageLimitError(StoreError, ValueError):
    """A value or layout exceeds what the database engine can store."""


class StoreUnavailableError(StoreError):
    """The database cannot be used right now (locked by another writer, disk full,
    server unreachable); the same call may work later.  Buffered results are kept
    and retried."""


class RunNotFoundError(QDatasetError, LookupError):
    """No run with the requested id exists in the store."""


class RunExistsError(QDatasetError):
    """A run with this id is already in the target store."""


class CompletedError(QDatasetError):
    """The run is completed; its results and parameters are read-only."""


class WriterActiveError(QDatasetError):
    """Another handle writes this run: this one may read it, not write it.

    Raised by the writing methods of a view (``store.read_dataset(id)``) and by
    ``store.resume_dataset(id)`` while the run's writer is alive, and by a
    writer whose lease was taken over."""


class InvalidArgumentError(QDatasetError, ValueError):
    """An argument has a value qdataset cannot use (a negative interval, say)."""


class AmbiguousRunError(RunNotFoundError, InvalidArgumentError):
    """A run id prefix matches more than one run (the message lists them): not one
    run found, and an argument that needs more characters of the id, or the run's
    number."""


class InvalidParamSpecError(QDatasetError, ValueError):
    """A ParamSpec was constructed with invalid arguments."""


class UnknownParameterError(QDatasetError, LookupError):
    """A value or request names a parameter the DataSet does not have."""


class DuplicateParameterError(QDatasetError, ValueError):
    """A parameter name is used twice in one DataSet."""


class ValueTypeError(QDatasetError, TypeError):
    """A value does not have the parameter's type."""


class ShapeError(QDatasetError, ValueError):
    """A value does not have the parameter's shape."""


class MissingValueError(QDatasetError, ValueError):
    """A result leaves out a parameter that is not optional."""


class LengthMismatchError(QDatasetError, ValueError):
    """Columns of values do not have the required lengths."""


class IndexRangeError(QDatasetError, IndexError):
    """A result index or range lies outside the DataSet."""


class MetadataError(QDatasetError, ValueError):
    """Metadata is not JSON-serialisable or uses a reserved tag."""


class UnknownSubscriptionError(QDatasetError, LookupError):
    """unsubscribe() was given something that is not a subscription of this DataSet."""


class FlushError(QDatasetError):
    """Buffered results could not be written; they are kept in memory."""


class FormatError(QDatasetError, ValueError):
    """A file format is unknown or a file cannot be read as one."""


class InvalidCallbackError(QDatasetError, TypeError):
    """A callback cannot be called the way qdataset calls it."""


class ReadOnlyError(StoreError):
    """The database role may only read this store (a PostgreSQL read-only role, see
    ``qdataset grant-read-only``); connect as a role that may write to change data."""
