"""One measurement in a fresh process: ``python -m benchmarks.worker IMPL CASE PATH ROWS ...``.

Prints a single line ``BENCH_RESULT {json}`` on stdout (other output of the
libraries is ignored by the runner). A failure is an exception and a non-zero
exit; the runner records it and goes on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Any

from benchmarks.common import CaseArgs, file_size_mb

MARKER = "BENCH_RESULT "
IMPLS = ("raw", "raw-layout", "qdataset", "qcodes", "qdataset-pg")
WRITE_CASES = ("A", "B", "C")


def parse_args(argv: list[str] | None = None) -> tuple[str, str, CaseArgs]:
    """The implementation, the case and the case's arguments from the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("impl", choices=IMPLS)
    parser.add_argument("case", choices=("A", "B", "C", "D"))
    parser.add_argument("path", help="database file (or PostgreSQL URL) to write (A-C) or read (D)")
    parser.add_argument("rows", type=int)
    parser.add_argument("--points", type=int, default=1000, help="trace length (case C)")
    parser.add_argument("--run-id", default=None, help="run to read (case D)")
    ns = parser.parse_args(argv)
    return ns.impl, ns.case, CaseArgs(ns.path, ns.rows, ns.points, ns.run_id)


def run(impl: str, case: str, args: CaseArgs) -> dict[str, Any]:
    """Run one case of one implementation and add the file size and interpreter."""
    module = importlib.import_module(f"benchmarks.cases_{impl.replace('-', '_')}")
    if case not in module.CASES:
        raise SystemExit(f"{impl} has no case {case}")
    result = module.CASES[case](args)
    if case in WRITE_CASES and "://" not in args.path:  # PostgreSQL: sized by the runner
        result["file_mb"] = file_size_mb(args.path)
    result["python"] = platform.python_version()
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    impl, case, args = parse_args(argv)
    result = run(impl, case, args)
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
