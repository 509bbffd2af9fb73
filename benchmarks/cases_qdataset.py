"""qdataset: the same work through the public API of DESIGN.md.

Untimed: importing the API, creating the input data and ``qdataset.connect`` (which creates or
upgrades the database file, or the tables in a fresh PostgreSQL schema when
the target is a ``postgresql+psycopg://`` URL: see ``cases_qdataset_pg.py``).
Timed: creating the run (``DataSet(...)``), the writes, ``mark_completed``
and ``store.close`` (which flushes); for case D, ``store.read_dataset(id)``
and ``get_data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import (
    PARAMS,
    CaseArgs,
    Measurement,
    compare_grid,
    grid_columns,
    grid_rows,
    input_mb,
    traces,
)


def _connect(path: str) -> Any:
    """A store on a SQLite file path, or on a database URL (PostgreSQL) as given."""
    import qdataset

    return qdataset.connect(path if "://" in path else "sqlite:///" + path)


def _grid_specs() -> list[Any]:
    """x, y as setpoints; a, b as outputs depending on them."""
    from qdataset import ParamSpec

    return [
        ParamSpec("x", np.float64, role="setpoint"),
        ParamSpec("y", np.float64, role="setpoint"),
        ParamSpec("a", np.float64, depends_on=["x", "y"]),
        ParamSpec("b", np.float64, depends_on=["x", "y"]),
    ]


def case_a(args: CaseArgs) -> dict[str, Any]:
    """Row by row: ``ds.add_result(x=..., y=..., a=..., b=...)`` per row, then mark_completed."""
    from qdataset import DataSet

    rows = grid_rows(args.rows)
    store = _connect(args.path)
    specs = _grid_specs()
    m = Measurement()
    m.start()
    ds = DataSet("bench", specs, store=store)
    for x, y, a, b in rows:
        ds.add_result(x=x, y=y, a=a, b=b)
    ds.mark_completed()
    run_id = ds.id
    store.close()
    m.stop()
    return {**m.as_dict(), "run_id": run_id}


def case_b(args: CaseArgs) -> dict[str, Any]:
    """Bulk: the columnar fast path ``ds.add_results({"x": xs, ...})``."""
    from qdataset import DataSet

    cols = grid_columns(args.rows)
    store = _connect(args.path)
    specs = _grid_specs()
    m = Measurement()
    m.start()
    ds = DataSet("bench", specs, store=store)
    ds.add_results({p: cols[p] for p in PARAMS})
    ds.mark_completed()
    run_id = ds.id
    store.close()
    m.stop()
    return {**m.as_dict(), "input_mb": input_mb(cols), "run_id": run_id}


def case_c(args: CaseArgs) -> dict[str, Any]:
    """Traces: a scalar setpoint and a ``shape=(points,)`` float64 parameter, row by row."""
    from qdataset import DataSet, ParamSpec

    setpoints, block = traces(args.rows, args.points)
    store = _connect(args.path)
    specs = [
        ParamSpec("s", np.float64, role="setpoint"),
        ParamSpec("trace", np.float64, shape=(args.points,), depends_on=["s"]),
    ]
    m = Measurement()
    m.start()
    ds = DataSet("bench", specs, store=store)
    for s, trace in zip(setpoints, block, strict=True):
        ds.add_result(s=s, trace=trace)
    ds.mark_completed()
    run_id = ds.id
    store.close()
    m.stop()
    return {**m.as_dict(), "payload_mb": block.nbytes / 1e6, "run_id": run_id}


def case_d(args: CaseArgs) -> dict[str, Any]:
    """Read case B's run in a fresh process: ``store.read_dataset(id).get_data(...)``.

    ``result_mb``: the size of the arrays returned (the memory goal's unit).
    """
    if args.run_id is None:
        raise ValueError("case D needs the run id written by case B")
    # Imported before the clock, as cases A-C import DataSet: read_dataset would
    # otherwise load qdataset.dataset lazily inside the timed read (and where
    # PYTHONDONTWRITEBYTECODE is set, as on the machine these figures come from,
    # compile its source, 12-18 ms).
    from qdataset import DataSet  # noqa: F401

    store = _connect(args.path)
    m = Measurement()
    m.start()
    ds = store.read_dataset(args.run_id)
    arrays = ds.get_data(*PARAMS)
    m.stop()
    store.close()
    return {**m.as_dict(), "rows_read": len(arrays[0]), "data": compare_grid(arrays, args.rows),
            "result_mb": sum(np.asarray(a).nbytes for a in arrays) / 1e6}


CASES: dict[str, Callable[[CaseArgs], dict[str, Any]]] = {
    "A": case_a,
    "B": case_b,
    "C": case_c,
    "D": case_d,
}
