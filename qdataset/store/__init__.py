"""The storage layer: the only part of qdataset that talks SQL.

It imports nothing from the layers above it.  They use :class:`Store` and the
per-run :class:`RunHandle` it hands out; database errors leave this package
as qdataset errors only (``boundary.py``).
"""

from .changes import ChangeFeed
from .handle import RunHandle
from .store import RunInfo, Store, connect, default_store

__all__ = ["ChangeFeed", "RunHandle", "RunInfo", "Store", "connect", "default_store"]
