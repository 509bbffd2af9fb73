"""Import speed: a 1M-row QCoDeS run through import_qcodes, against raw sqlite3.

    python -m benchmarks.qcodes_import                       # 1,000,000 rows, 3 repeats
    python -m benchmarks.qcodes_import --rows 100000 --repeats 1
    python -m benchmarks.qcodes_import --python /tmp/qc312/bin/python   # QCoDeS there
    python -m benchmarks.qcodes_import --pg                  # also into PostgreSQL

The source is written once by real QCoDeS (``Measurement``/``DataSaver``, one
1-D sweep: ``x`` setpoint, ``y`` depends on ``x``, both ``numeric``) in the
interpreter given with ``--python`` (QCoDeS 0.59+ needs Python 3.12); it is kept
in the work directory and reused while its row count matches.  Each repeat
then times, in this process:

* raw: plain ``sqlite3`` reading the run's results table into two float64
  numpy arrays (``fetchmany`` chunks, ``np.array`` per chunk), the least any
  importer must do to get the values out;
* import: ``import_qcodes(path, store=<fresh store>)``, everything included
  (opening and checking the file, typing the columns, writing every row into
  a new SQLite store, or PostgreSQL with ``--pg``, metadata, completion).

It prints rows/s for both and the ratio import / raw (time).  Nothing fails a
build; the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = ROOT / "benchmarks" / ".work"
DEFAULT_PYTHON = Path("/tmp/qc312/bin/python")

#: Written by QCoDeS in the interpreter given with --python.
MAKE_SOURCE = r"""
import sys, time
import numpy as np
import qcodes
from qcodes.dataset import (Measurement, initialise_or_create_database_at,
                            load_or_create_experiment)

path, rows = sys.argv[1], int(sys.argv[2])
initialise_or_create_database_at(path)
exp = load_or_create_experiment("benchmark", sample_name="bench")
meas = Measurement(exp=exp, name="sweep_1M")
meas.register_custom_parameter("x", label="Gate", unit="V")
meas.register_custom_parameter("y", label="Current", unit="A", setpoints=("x",))
meas.set_shapes({"y": (rows,)})
x = np.linspace(-1.0, 1.0, rows)
y = np.sin(7 * x) * 1e-9 + np.random.default_rng(1).normal(size=rows) * 1e-12
t0 = time.perf_counter()
with meas.run() as saver:
    step = 10_000  # numeric parameters given as arrays are unrolled into rows
    for lo in range(0, rows, step):
        saver.add_result(("x", x[lo:lo + step]), ("y", y[lo:lo + step]))
print(f"QCoDeS {qcodes.__version__} wrote {rows} rows in {time.perf_counter() - t0:.1f} s")
"""


def make_source(python: Path, path: Path, rows: int) -> None:
    """The QCoDeS file with ``rows`` rows, reused if it is there already."""
    if path.exists() and _rows_in(path) == rows:
        print(f"source: {path} ({rows:,} rows, reused)")
        return
    path.unlink(missing_ok=True)
    if not python.exists():
        raise SystemExit(
            f"no Python with QCoDeS at {python}: make one with "
            "~/.pyenv/versions/3.12.1/bin/python -m venv /tmp/qc312 && "
            "/tmp/qc312/bin/pip install 'qcodes>=0.59', or pass --python")
    done = subprocess.run([str(python), "-c", MAKE_SOURCE, str(path), str(rows)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"writing the QCoDeS source failed:\n{done.stderr[-2000:]}")
    print("source: " + done.stdout.strip().splitlines()[-1] + f" -> {path}")


def _rows_in(path: Path) -> int | None:
    try:
        with sqlite3.connect(path.as_uri() + "?mode=ro", uri=True) as conn:
            table = conn.execute("SELECT result_table_name FROM runs LIMIT 1").fetchone()[0]
            return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    except Exception:  # noqa: BLE001 - anything odd: write it again
        return None


def raw_read(path: Path) -> float:
    """Seconds for plain sqlite3 to read the run's values into numpy arrays."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path.as_uri() + "?mode=ro&immutable=1", uri=True)
    table = conn.execute("SELECT result_table_name FROM runs LIMIT 1").fetchone()[0]
    cursor = conn.execute(f'SELECT x, y FROM "{table}" ORDER BY id')
    parts = []
    while rows := cursor.fetchmany(50_000):
        parts.append(np.array(rows, dtype=np.float64))
    values = np.concatenate(parts)
    conn.close()
    seconds = time.perf_counter() - t0
    assert len(values) > 0
    return seconds


def timed_import(path: Path, url: str) -> tuple[float, int]:
    import qdataset

    with qdataset.connect(url) as store:
        t0 = time.perf_counter()
        ids = qdataset.import_qcodes(path, store=store, show_progress=False)
        seconds = time.perf_counter() - t0
        length = store.read_dataset(ids[0]).length
    return seconds, length


def _pg_url() -> tuple[str, str] | None:
    """A fresh schema on the test server, if one answers: (schema, url)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import postgres_problem, postgres_schema_url

    problem = postgres_problem()
    if problem:
        print(f"PostgreSQL skipped: {problem}")
        return None
    return postgres_schema_url()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python", type=Path, default=DEFAULT_PYTHON,
                        help="interpreter with QCoDeS installed (writes the source)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--pg", action="store_true", help="also import into PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"qcodes_{args.rows}.db"
    make_source(args.python, source, args.rows)
    targets = ["sqlite"] + (["postgresql"] if args.pg else [])
    results: dict[str, list[float]] = {"raw": []} | {t: [] for t in targets}
    for rep in range(args.repeats):
        results["raw"].append(raw_read(source))
        for target in targets:
            if target == "sqlite":
                scratch = Path(tempfile.mkdtemp(dir=args.workdir))
                try:
                    seconds, length = timed_import(source, f"sqlite:///{scratch / 'lab.db'}")
                finally:
                    shutil.rmtree(scratch)
            else:
                made = _pg_url()
                if made is None:
                    results.pop(target)
                    targets.remove(target)
                    break
                schema, url = made
                from conftest import drop_postgres_schema

                try:
                    seconds, length = timed_import(source, url)
                finally:
                    drop_postgres_schema(schema)
            assert length == args.rows, (length, args.rows)
            results[target].append(seconds)
        print(f"repeat {rep + 1}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in results.items() if v), flush=True)
    raw = statistics.median(results["raw"])
    print(f"\nQCoDeS run of {args.rows:,} rows (x, y numeric), median of {args.repeats}:")
    print(f"  raw sqlite3 read into numpy     {raw:7.2f} s  {args.rows / raw:12,.0f} rows/s")
    summary = {"rows": args.rows, "repeats": args.repeats, "raw_s": raw}
    for target in targets:
        seconds = statistics.median(results[target])
        print(f"  import_qcodes -> {target:<13}  {seconds:7.2f} s  "
              f"{args.rows / seconds:12,.0f} rows/s  ({seconds / raw:.1f}x raw)")
        summary[f"{target}_s"] = seconds
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
