"""qdataset on PostgreSQL (impl ``qdataset-pg``): the same code as ``cases_qdataset.py``.

The worker's PATH argument is a ``postgresql+psycopg://`` URL whose
``search_path`` points at a fresh schema made by the runner (``pg.py``), so
the timed work is exactly that of the SQLite cases, on the server. Case C
(array traces) is not part of the PostgreSQL comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.cases_qdataset import case_a, case_b, case_d
from benchmarks.common import CaseArgs

CASES: dict[str, Callable[[CaseArgs], dict[str, Any]]] = {
    "A": case_a,
    "B": case_b,
    "D": case_d,
}
