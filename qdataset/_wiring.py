"""Hooks the package root connects, so lower layers never import the ones above.

``Store.read_dataset`` must hand back a DataSet, yet the storage package sits
below the DataSet layer and may not import it.  The package root
(``qdataset/__init__.py``, the composition root, which may import every
layer) installs the function here when ``qdataset`` is imported, which Python
always does before any of its submodules.
"""

from __future__ import annotations

from typing import Any, Protocol


class DatasetOpener(Protocol):
    def __call__(self, store: Any, handle: Any) -> Any: ...


#: Builds the user-facing DataSet for a run handle of a store.
open_dataset: DatasetOpener | None = None
