"""The storage layer: the only part of qdataset that talks SQL."""

from .store import RunInfo, Store, connect, default_store

__all__ = ["RunInfo", "Store", "connect", "default_store"]
