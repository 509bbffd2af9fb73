"""QCoDeS with its normal API: Measurement, DataSaver.add_result, get_parameter_data.

Untimed: creating the input data, ``initialise_or_create_database_at``, the
experiment and the Measurement's parameter registration. Timed: ``meas.run()``
(which creates the run), the ``add_result`` calls and leaving the context
(which flushes and completes the run); for case D, ``load_by_id`` and
``get_parameter_data()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _grid_measurement(path: str) -> Any:
    """A Measurement with x, y as setpoints of a and b, on a fresh database at ``path``."""
    from qcodes.dataset import Measurement as QMeasurement
    from qcodes.dataset import initialise_or_create_database_at, load_or_create_experiment

    initialise_or_create_database_at(path)
    exp = load_or_create_experiment("bench", sample_name="bench")
    meas = QMeasurement(exp=exp, name="bench")
    meas.register_custom_parameter("x")
    meas.register_custom_parameter("y")
    meas.register_custom_parameter("a", setpoints=("x", "y"))
    meas.register_custom_parameter("b", setpoints=("x", "y"))
    return meas


def case_a(args: CaseArgs) -> dict[str, Any]:
    """Row by row: ``datasaver.add_result(("x", x), ...)`` per row."""
    rows = grid_rows(args.rows)
    meas = _grid_measurement(args.path)
    m = Measurement()
    m.start()
    with meas.run() as saver:
        for x, y, a, b in rows:
            saver.add_result(("x", x), ("y", y), ("a", a), ("b", b))
    m.stop()
    return {**m.as_dict(), "run_id": str(saver.run_id)}


def case_b(args: CaseArgs) -> dict[str, Any]:
    """Bulk: one ``add_result`` with the four whole arrays (QCoDeS unrolls them into rows)."""
    cols = grid_columns(args.rows)
    meas = _grid_measurement(args.path)
    m = Measurement()
    m.start()
    with meas.run() as saver:
        saver.add_result(*((p, cols[p]) for p in PARAMS))
    m.stop()
    return {**m.as_dict(), "input_mb": input_mb(cols), "run_id": str(saver.run_id)}


def case_c(args: CaseArgs) -> dict[str, Any]:
    """Traces: a scalar setpoint ``s`` and an ``array``-type parameter ``trace``, row by row."""
    from qcodes.dataset import Measurement as QMeasurement
    from qcodes.dataset import initialise_or_create_database_at, load_or_create_experiment

    setpoints, block = traces(args.rows, args.points)
    initialise_or_create_database_at(args.path)
    exp = load_or_create_experiment("bench", sample_name="bench")
    meas = QMeasurement(exp=exp, name="bench")
    meas.register_custom_parameter("s")
    meas.register_custom_parameter("trace", paramtype="array", setpoints=("s",))
    m = Measurement()
    m.start()
    with meas.run() as saver:
        for s, trace in zip(setpoints, block, strict=True):
            saver.add_result(("s", s), ("trace", trace))
    m.stop()
    return {**m.as_dict(), "payload_mb": block.nbytes / 1e6, "run_id": str(saver.run_id)}


def case_d(args: CaseArgs) -> dict[str, Any]:
    """Read case B's run in a fresh process: ``load_by_id(id).get_parameter_data()``."""
    from qcodes.dataset import initialise_or_create_database_at, load_by_id

    if args.run_id is None:
        raise ValueError("case D needs the run id written by case B")
    initialise_or_create_database_at(args.path)
    m = Measurement()
    m.start()
    data = load_by_id(int(args.run_id)).get_parameter_data()
    m.stop()
    arrays = [data["a"]["x"], data["a"]["y"], data["a"]["a"], data["b"]["b"]]
    return {**m.as_dict(), "rows_read": len(arrays[2]), "data": compare_grid(arrays, args.rows)}


CASES: dict[str, Callable[[CaseArgs], dict[str, Any]]] = {
    "A": case_a,
    "B": case_b,
    "C": case_c,
    "D": case_d,
}
