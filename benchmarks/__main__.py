"""``python -m benchmarks``: cases A-D for raw sqlite3, qdataset and QCoDeS (issue 4),
plus qdataset on PostgreSQL for cases A, B and D (issue 7) when a server answers,
the store-size cases (SCALE) and the live writer with 5 subscribers (LIVE) of
issue 12, on both engines.

It prints a table and the goals, saves JSON, and exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.pg import DEFAULT_PG_URL
from benchmarks.report import print_report
from benchmarks.runner import (
    CASES,
    DEFAULT_WORKDIR,
    PARTS,
    ROOT,
    Config,
    run_all,
    save_json,
)

DEFAULT_JSON = "benchmarks/results.json"


def parse_args(argv: list[str] | None = None) -> tuple[Config, str]:
    """The run's configuration and the JSON path from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark qdataset against raw sqlite3 and QCoDeS (cases A-D of issue 4), "
                    "qdataset on PostgreSQL next to SQLite (cases A, B, D; issue 7), and the "
                    "store-size and live rows of issue 12 (SCALE, LIVE).",
    )
    add = parser.add_argument
    add("--quick", action="store_true",
        help="a tenth of the sizes and one repeat (unless --repeats is given); store size "
             "100 runs vs 10, 1 probe each; live 20,000 rows once")
    add("--repeats", type=int, default=None, help="runs per case and implementation (3)")
    add("--only", default=",".join(CASES + PARTS),
        help="what to run, e.g. A,B or SCALE,LIVE (default: all of A,B,C,D,SCALE,LIVE)")
    add("--big", action="store_true",
        help="store size: also 100,000 runs (same layouts); populating them takes long")
    add("--probes", type=int, default=None,
        help="store size: fresh-process probes per store (7; quick: 1)")
    add("--populate-budget", type=float, default=900.0,
        help="store size: seconds of populating per store and run (900); a store left "
             "short is resumed by the next run")
    add("--live-repeats", type=int, default=None,
        help="live: repetitions of each writer configuration (11; quick: 1)")
    add("--python", dest="qcodes_python", default=None,
        help="interpreter with qcodes installed, for the QCoDeS cases (default: this one)")
    add("--json", default=DEFAULT_JSON, help=f"where to save results (default: {DEFAULT_JSON})")
    add("--workdir", default=None,
        help=f"where to put database files (default: {DEFAULT_WORKDIR.relative_to(ROOT)}); "
             "measurement files are deleted afterwards, the populated stores in its stores/ "
             "folder are kept and reused")
    add("--keep", action="store_true",
        help="keep the database files and PostgreSQL schemas (populated schemas included)")
    add("--no-postgres", action="store_true",
        help="skip qdataset on PostgreSQL (cases A, B, D; default: run it if a server answers)")
    add("--pg-url", default=DEFAULT_PG_URL,
        help=f"PostgreSQL server to use (default: $QDATASET_BENCH_PG_URL or {DEFAULT_PG_URL}); "
             "each measurement gets its own schema, dropped afterwards")
    ns = parser.parse_args(argv)
    chosen = tuple(c.strip().upper() for c in ns.only.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CASES + PARTS]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(CASES + PARTS)}")
    cases = tuple(c for c in chosen if c in CASES)
    parts = tuple(c for c in chosen if c in PARTS)
    repeats = ns.repeats if ns.repeats is not None else (1 if ns.quick else 3)
    cfg = Config(repeats=max(1, repeats), quick=ns.quick, cases=cases,
                 qcodes_python=ns.qcodes_python, workdir=ns.workdir, keep=ns.keep,
                 import_repeats=3 if ns.quick else 5, postgres=not ns.no_postgres,
                 pg_url=ns.pg_url, parts=parts, big=ns.big,
                 probes=max(1, ns.probes or (1 if ns.quick else 7)),
                 populate_budget=ns.populate_budget, live_repeats=ns.live_repeats)
    return cfg, ns.json


def main(argv: list[str] | None = None) -> int:
    """Run, print, save."""
    cfg, json_path = parse_args(argv)
    print(f"qdataset benchmarks: {','.join(cfg.cases + cfg.parts)}, {cfg.repeats} repeat(s)"
          f"{', quick sizes' if cfg.quick else ''}; python {sys.version.split()[0]}", flush=True)
    t0 = time.monotonic()
    results = run_all(cfg)
    results.config["wall_s"] = time.monotonic() - t0
    print_report(results)
    save_json(results, json_path)
    print(f"\nresults saved to {json_path}; measuring took {results.config['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
