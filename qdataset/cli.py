"""The ``qdataset`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qdataset", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write a simulated 2-D gate sweep")
    demo.add_argument("--url", help="store URL (default: $QDATASET_URL or the user data dir)")
    demo.add_argument("--points", type=int, default=60, help="points per gate (default 60)")
    demo.add_argument("--delay", type=float, default=0.0,
                      help="seconds to wait per point, to watch it live (default 0)")
    demo.set_defaults(func=_demo)

    runs = commands.add_parser("runs", help="list the runs in a store, newest first")
    runs.add_argument("--url", help="store URL (default: the default store)")
    runs.add_argument("--name", help="only runs with this name")
    runs.set_defaults(func=_runs)

    copy = commands.add_parser(
        "copy", help="copy runs between stores, ids preserved (e.g. local file -> lab server)")
    copy.add_argument("source", help="store URL or SQLite file to copy from")
    copy.add_argument("target", help="store URL or SQLite file to copy to")
    copy.add_argument("--run", action="append", dest="runs", metavar="ID",
                      help="copy only this run (repeatable; default: every run not yet there)")
    copy.set_defaults(func=_copy)

    _add_extra_commands(commands)
    args = parser.parse_args(argv)
    from .errors import QDatasetError

    try:
        return int(args.func(args) or 0)
    except QDatasetError as exc:  # a message that says what to do, without a traceback
        print(f"qdataset {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo, summary
    from .store import connect

    if args.points < 1:
        raise SystemExit("qdataset demo: --points must be at least 1")
    with connect(args.url) as store:
        dataset = run_demo(store, points=args.points, delay=args.delay)
        print(summary(dataset, store))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from .store import connect

    with connect(args.url) as store:
        for run in store.runs(name=args.name):
            state = "completed" if run.completed else "open"
            print(f"{run.id}\t{run.length} rows\t{state}\t{run.created:%Y-%m-%d %H:%M:%S}Z")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from .io import copy_runs
    from .store import connect

    with connect(args.source) as source, connect(args.target) as target:
        copied, skipped = copy_runs(source, target, args.runs)
    print(f"copied {len(copied)} runs to {args.target}"
          + (f"; {len(skipped)} already there: {', '.join(skipped)}" if skipped else ""))
    return 0


def _add_extra_commands(commands: argparse._SubParsersAction) -> None:
    """Commands of the optional layers (jobs worker, copy), registered here."""
    from .jobs.cli import add_worker_command

    add_worker_command(commands)


if __name__ == "__main__":
    sys.exit(main())
