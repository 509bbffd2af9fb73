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
    runs.add_argument("--state", choices=("running", "completed", "failed"),
                      help="only runs in this state (failed: the measurement raised)")
    runs.add_argument("--json", action="store_true",
                      help="one JSON object per run and line, for scripts")
    runs.set_defaults(func=_runs)

    copy = commands.add_parser(
        "copy", help="copy runs between stores, ids preserved (e.g. local file -> lab server)")
    copy.add_argument("source", help="store URL or SQLite file to copy from")
    copy.add_argument("target", help="store URL or SQLite file to copy to")
    copy.add_argument("--run", action="append", dest="runs", metavar="ID",
                      help="copy only this run (repeatable; default: every run not yet there)")
    copy.set_defaults(func=_copy)

    grant = commands.add_parser(
        "grant-read-only",
        help="PostgreSQL: create or update a role that may only read the store")
    grant.add_argument("role", help="name of the role (a PostgreSQL login user)")
    grant.add_argument("--url", help="the store, connected as its owner (default: the "
                                     "default store)")
    grant.add_argument("--password", help="set the role's password (default: leave it; a new "
                                          "role then has none, for trust/peer authentication)")
    grant.set_defaults(func=_grant_read_only)

    rescue = commands.add_parser(
        "rescue", help="load results saved in a rescue file back into their runs")
    rescue.add_argument("file", help="the rescue file a failed close named (…rescue-….db)")
    rescue.add_argument("--url", help="store the runs belong to (default: the default store)")
    rescue.set_defaults(func=_rescue)

    _add_extra_commands(commands)
    args = parser.parse_args(argv)
    from .errors import QDatasetError

    try:
        return int(args.func(args) or 0)
    except (QDatasetError, OSError) as exc:  # what to do, in one line, without a traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"qdataset {args.command}: {message}", file=sys.stderr)
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

    with connect(args.url, create=False) as store:  # listing never creates a store
        runs = [r for r in store.runs(name=args.name)
                if args.state is None or r.state == args.state]
    if args.json:
        import json

        for run in runs:
            print(json.dumps({"id": run.id, "name": run.name, "state": run.state,
                              "rows": run.length, "created": run.created.isoformat(),
                              "completed": None if run.completed_at is None
                              else run.completed_at.isoformat()}))
        return 0
    if not runs:
        return 0
    width = max(len("ID"), *(len(r.id) for r in runs))
    rows_width = max(len("ROWS"), *(len(str(r.length)) for r in runs))
    print(f"{'ID':<{width}}  {'ROWS':>{rows_width}}  {'STATE':<9}  CREATED (UTC)")
    for run in runs:
        print(f"{run.id:<{width}}  {run.length:>{rows_width}}  {run.state:<9}  "
              f"{run.created:%Y-%m-%d %H:%M:%S}")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from .io import copy_runs
    from .store import connect

    # The source must exist (a typo must not create an empty store and "copy 0 runs");
    # it is opened first, so a missing source leaves no target behind either.
    with connect(args.source, create=False) as source, connect(args.target) as target:
        copied, skipped = copy_runs(source, target, args.runs)
    print(f"copied {len(copied)} runs to {args.target}"
          + (f"; {len(skipped)} already there: {', '.join(skipped)}" if skipped else ""))
    return 0


def _rescue(args: argparse.Namespace) -> int:
    from .store import connect

    with connect(args.url, create=False) as store:
        loaded = store.load_rescue(args.file)
    for item in loaded:
        if item.first_index is None:
            print(f"{item.run_id}: skipped, {item.note}")
        else:
            print(f"{item.run_id}: {item.count} results loaded from index {item.first_index} "
                  f"({item.note})")
    return 0


def _grant_read_only(args: argparse.Namespace) -> int:
    from .store.roles import grant_read_only

    schema = grant_read_only(args.url, args.role, password=args.password)
    print(f"role {args.role!r} may log in and read schema {schema!r} (its tables now and "
          "later), and nothing else; every write it tries fails with ReadOnlyError")
    return 0


def _add_extra_commands(commands: argparse._SubParsersAction) -> None:
    """Commands of the optional layers (jobs worker, web view), registered here."""
    from .jobs.cli import add_worker_command
    from .web.command import add_serve_command

    add_worker_command(commands)
    add_serve_command(commands)


if __name__ == "__main__":
    sys.exit(main())
