"""Store-size probes in a fresh process: ``python -m benchmarks.scaling_worker MODE ...``.

Modes (each prints one ``BENCH_RESULT {json}`` line, like ``worker.py``):

``populate URL N NAMES [--budget S]``
    fill a store up to N small completed runs through the public API
    (``connect``, ``DataSet``, ``add_results``, ``mark_completed``), with a
    tqdm progress bar on stderr. NAMES is ``same`` (three layouts in
    rotation) or ``own`` (run i names its parameters ``p<i>_a``, ``p<i>_b``,
    ...). Resumes a store an earlier call left short; stops after S seconds.
    Reports how many runs the store holds, the ids of the first, middle and
    last run, and ``failure`` if a run could not be written (populating stops
    there; the runs before it are kept).
``probe URL NAMES RUN_ID``
    the measurement, against a populated store: timed ``connect`` +
    ``read_dataset(RUN_ID)`` + ``get_data`` of every parameter (imports before
    the clock), then, on that connection, the timed creation of one more
    small run (``DataSet(...)``, ``add_results`` of a few rows,
    ``mark_completed``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from typing import Any

import numpy as np

from benchmarks.common import Measurement

MARKER = "BENCH_RESULT "
ROWS_PER_RUN = 5
NAMES_MODES = ("same", "own")
# three layouts in rotation: (suffix, dtype) per parameter; the first is the setpoint
LAYOUTS: tuple[tuple[tuple[str, Any], ...], ...] = (
    (("x", np.float64), ("y", np.float64)),
    (("x", np.float64), ("y", np.float64), ("z", np.float64)),
    (("t", np.float64), ("n", np.int64), ("v", np.float64)),
)


def _connect(url: str) -> Any:
    import qdataset

    return qdataset.connect(url)


def small_run(store: Any, number: int, names: str, prefix: str = "p") -> str:
    """One completed run of layout ``number % 3`` with ROWS_PER_RUN rows; its id."""
    from qdataset import DataSet, ParamSpec

    layout = LAYOUTS[number % len(LAYOUTS)]
    own = names == "own"
    letters = "abc"
    names_of = [f"{prefix}{number}_{letters[i]}" if own else suffix
                for i, (suffix, _) in enumerate(layout)]
    setpoint = names_of[0]
    specs = [ParamSpec(setpoint, layout[0][1], role="setpoint")]
    specs += [ParamSpec(n, dt, depends_on=[setpoint])
              for n, (_, dt) in zip(names_of[1:], layout[1:], strict=True)]
    values = {n: np.arange(ROWS_PER_RUN, dtype=dt) * (i + 1)
              for i, (n, (_, dt)) in enumerate(zip(names_of, layout, strict=True))}
    ds = DataSet(f"scale-{number}", specs, store=store)
    ds.add_results(values)
    ds.mark_completed()
    return ds.id


def populate(url: str, count: int, names: str, budget_s: float,
             position: int = 0) -> dict[str, Any]:
    """Fill the store up to ``count`` runs, resuming where an earlier call stopped.

    Stops early (cleanly: every run written is complete) once ``budget_s``
    seconds have passed; the caller sees how far it got in ``runs``.
    """
    from tqdm import tqdm

    store = _connect(url)
    start = len(store.runs())
    t0 = time.perf_counter()
    done = start
    bar = tqdm(total=count, initial=start, desc=f"populate {count:,} runs ({names} names)",
               unit="run", file=sys.stderr, mininterval=2.0, smoothing=0.05,
               position=position, leave=True)
    failure = None
    try:
        for i in range(start, count):
            if time.perf_counter() - t0 > budget_s:
                break
            small_run(store, i, names)
            done = i + 1
            bar.update(1)
    except Exception as exc:  # noqa: BLE001 - reported; the runs written so far stay usable
        traceback.print_exc()
        failure = f"run {done}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
    bar.close()
    seconds = time.perf_counter() - t0
    ids = {}
    for label, i in (("first", 0), ("middle", count // 2), ("last", count - 1)):
        found = store.runs(name=f"scale-{i}")
        if found:
            ids[label] = found[0].id
    store.close()
    return {"seconds": seconds, "runs": done, "added": done - start, "ids": ids,
            "failure": failure}


def probe(url: str, names: str, run_id: str) -> dict[str, Any]:
    """Both probes in one fresh process, on a store that holds the populated runs.

    First the read: timed ``connect`` + ``read_dataset(run_id)`` + ``get_data``
    of every parameter. The imports come before the clock (qdataset's storage
    modules, SQLAlchemy, the driver, Alembic): they cost the same at any
    store size. Then the creation of one more small run on the
    same connection: timed ``DataSet(...)``, ``add_results`` and
    ``mark_completed`` (layout 0; with NAMES ``own``, names no populated run
    uses).
    """
    import alembic.script  # noqa: F401 - connect() looks up the newest schema revision

    from qdataset import DataSet, ParamSpec, connect  # noqa: F401 - imports off the clock
    if url.startswith("postgresql"):
        import psycopg  # noqa: F401
        import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
    else:
        import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401

    read = Measurement()
    read.start()
    store = connect(url)
    ds = store.read_dataset(run_id)
    params = [spec.name for spec in ds.get_parameters()]
    arrays = ds.get_data(*params)
    read.stop()
    number = 10_000_000 + int(time.time_ns() % 1_000_000)
    number -= number % len(LAYOUTS)  # layout 0 (x, y), like the first populated run
    create = Measurement()
    create.start()
    new_id = small_run(store, number, names, prefix="q")
    create.stop()
    store.close()
    return {"read": {**read.as_dict(), "rows_read": len(arrays[0]) if arrays else 0,
                     "params": len(params)},
            "create": {**create.as_dict(), "run_id": new_id}}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling_worker")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("populate")
    p.add_argument("url")
    p.add_argument("count", type=int)
    p.add_argument("names", choices=NAMES_MODES)
    p.add_argument("--budget", type=float, default=float("inf"), help="stop after ... s")
    p.add_argument("--position", type=int, default=0, help="line of the progress bar")
    c = sub.add_parser("probe")
    c.add_argument("url")
    c.add_argument("names", choices=NAMES_MODES)
    c.add_argument("run_id", help="the run to read")
    ns = parser.parse_args(argv)
    if ns.mode == "populate":
        result = populate(ns.url, ns.count, ns.names, ns.budget, ns.position)
    else:
        result = probe(ns.url, ns.names, ns.run_id)
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
