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
    runs.add_argument("--experiment", help="only runs of this experiment")
    runs.add_argument("--sample", help="only runs of this sample")
    runs.add_argument("--since", metavar="WHEN",
                      help="only runs created since WHEN: a date or time (2026-12-01, "
                           "2026-12-01T13:05, local time) or an age (30m, 12h, 7d, 2w)")
    runs.add_argument("--state", choices=("running", "interrupted", "completed", "failed"),
                      help="only runs in this state (interrupted: not completed and its "
                           "writer is gone, so store.resume_dataset(id) continues it; "
                           "failed: the measurement raised)")
    runs.add_argument("--json", action="store_true",
                      help="one JSON object per run and line, for scripts")
    runs.set_defaults(func=_runs)

    qcodes = commands.add_parser(
        "import-qcodes", help="import every run of a QCoDeS .db file (GUIDs as ids, "
                              "captured_run_id as numbers); runs already there are skipped")
    qcodes.add_argument("path", help="the QCoDeS database file (read only, never changed)")
    qcodes.add_argument("--url", help="store to import into (default: the default store)")
    qcodes.set_defaults(func=_import_qcodes)

    imports = commands.add_parser(
        "import", help="store the run of a file written by `qdataset export` or QCoDeS: "
                       ".nc (netCDF) or a one-run .db; a run already there is kept")
    imports.add_argument("file", metavar="FILE", help="the file to read (never changed)")
    imports.add_argument("--url", help="store to import into (default: the default store)")
    imports.set_defaults(func=_import_file)

    run_help = "the run: its number, its id, or the start of its id"
    show = commands.add_parser("show", help="describe one run: ids, groups, state, rows, "
                                            "parameters and metadata")
    show.add_argument("run", metavar="RUN", help=run_help)
    show.add_argument("--url", help="store URL (default: the default store)")
    show.set_defaults(func=_show)

    export = commands.add_parser(
        "export", help="write one run to a file: .nc (netCDF, QCoDeS-compatible), .csv, "
                       ".db (format from the suffix)")
    export.add_argument("run", metavar="RUN", help=run_help)
    export.add_argument("file", metavar="FILE", help="the file to write (replaced if present)")
    export.add_argument("--url", help="store URL (default: the default store)")
    export.set_defaults(func=_export)

    plot = commands.add_parser("plot", help="plot one run with matplotlib (plot_dataset)")
    plot.add_argument("run", metavar="RUN", help=run_help)
    plot.add_argument("-o", "--output", metavar="FILE",
                      help="save the figure to FILE (.png, .pdf, .svg, ...) instead of "
                           "opening a window")
    plot.add_argument("--url", help="store URL (default: the default store)")
    plot.set_defaults(func=_plot)

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

    since = None if args.since is None else _parse_since(args.since)
    with connect(args.url, create=False) as store:  # listing never creates a store
        runs = [r for r in store.runs(name=args.name, experiment=args.experiment,
                                      sample=args.sample, since=since)
                if args.state is None or r.state == args.state]
    if args.json:
        import json

        for run in runs:
            print(json.dumps({"number": run.number, "id": run.id, "name": run.name,
                              "experiment": run.experiment, "sample": run.sample,
                              "state": run.state, "rows": run.length,
                              "created": run.created.isoformat(),
                              "completed": None if run.completed_at is None
                              else run.completed_at.isoformat()}))
        return 0
    if not runs:
        return 0
    table = [("#", "ID", "NAME", "EXPERIMENT", "SAMPLE", "ROWS", "STATE", "CREATED (UTC)")]
    table += [(str(r.number or ""), r.id, r.name, r.experiment or "-", r.sample or "-",
               str(r.length), r.state, f"{r.created:%Y-%m-%d %H:%M:%S}") for r in runs]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right = {0, 5}  # numbers
    for row in table:
        print("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    return 0


def _parse_since(text: str) -> float:
    """Unix seconds of ``--since``: an ISO date/time (local unless it gives a zone)
    or an age such as 30m, 12h, 7d, 2w."""
    import re
    import time
    from datetime import datetime

    from .errors import InvalidArgumentError

    age = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if age:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[age.group(2)]
        return time.time() - float(age.group(1)) * seconds
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise InvalidArgumentError(
            f"--since {text!r} is neither a date or time (2026-12-01, 2026-12-01T13:05) nor "
            "an age (30m, 12h, 7d, 2w)") from None


def _import_qcodes(args: argparse.Namespace) -> int:
    from .qcodes_import import import_report
    from .store import connect

    with connect(args.url) as store:
        report = import_report(args.path, store)
        where = store.display_url
    print(f"imported {len(report.imported)} runs ({report.rows} rows) from {args.path} "
          f"into {where}" + (f"; {len(report.skipped)} already there, skipped"
                             if report.skipped else ""))
    for guid, (wanted, got) in report.renumbered.items():
        print(f"  run {guid}: number {wanted} is taken in this store, so it is number {got}")
    return 0


def _import_file(args: argparse.Namespace) -> int:
    from .io import read_dataset
    from .store import connect

    with connect(args.url) as store:
        known = store.runs_fingerprint()
        ds = read_dataset(args.file, store=store)
        new = store.runs_fingerprint() != known
        what = "imported" if new else "already there:"
        print(f"{what} run {ds.id} ({ds.length} rows) from {args.file} "
              f"{'into' if new else 'in'} {store.display_url}")
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


def _read_run(store, run: str):
    """RUN of the inspecting commands: a number, an id or a unique id prefix (digits
    are a number; when no run has that number, the start of an id: "20261201")."""
    from .errors import RunNotFoundError

    if run.isdigit():
        try:
            return store.read_dataset(int(run))
        except RunNotFoundError:
            pass
    return store.read_dataset(run)


def _show(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from .store import connect

    def when(timestamp: float | None) -> str:
        if timestamp is None:
            return "-"
        return f"{datetime.fromtimestamp(timestamp, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"

    with connect(args.url, create=False) as store:
        ds = _read_run(store, args.run)
        metadata = {k: v for k, v in ds.get_metadata().items() if k not in ("id", "parameters")}
        state = store.run_info(ds.id).state  # as `qdataset runs` says it
        facts = [("id", ds.id), ("number", ds.number), ("name", ds.name),
                 ("experiment", ds.experiment), ("sample", ds.sample), ("state", state),
                 ("rows", ds.length), ("created", when(ds.created_at)),
                 ("completed", when(ds.completed_at))]
        for key, value in facts:
            print(f"{key + ':':<12}{'-' if value is None else value}")
        specs = ds.get_parameters()
        print(f"parameters: {len(specs)}")
        if specs:
            table = [(s.name, str(s.type) + (str(s.shape) if s.shape else ""), s.role,
                      s.unit or "-", s.label or "-",
                      f"depends on {', '.join(s.depends_on)}" if s.depends_on else "")
                     for s in specs]
            header = ("NAME", "TYPE", "ROLE", "UNIT", "LABEL", "")
            widths = [max(len(row[k]) for row in [header, *table]) for k in range(5)]
            for row in [header, *table]:
                cells = (f"{cell:<{w}}" for cell, w in zip(row[:5], widths, strict=True))
                print(("  " + "  ".join(cells) + (f"  {row[5]}" if row[5] else "")).rstrip())
        print("metadata:" + ("" if metadata else " -"))
        for line in json.dumps(metadata, indent=2, default=str).splitlines()[1:-1]:
            print(line)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .io import write_dataset
    from .store import connect

    with connect(args.url, create=False) as store:
        ds = _read_run(store, args.run)
        write_dataset(ds, args.file)
        print(f"wrote run {ds.id} ({ds.length} rows) to {args.file}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    import os

    from .errors import FormatError
    from .store import connect

    try:
        import matplotlib
    except ImportError as exc:
        raise FormatError("qdataset plot needs matplotlib: pip install matplotlib") from exc
    if args.output:
        matplotlib.use("Agg")  # a file needs no window, nor a display
    elif (sys.platform.startswith("linux") and not os.environ.get("MPLBACKEND")
          and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        raise FormatError("no display to open a plot window on; save the figure with "
                          "-o FILE (e.g. -o run.png)")
    import matplotlib.pyplot as plt

    from .plotting import plot_dataset

    with connect(args.url, create=False) as store:
        ds = _read_run(store, args.run)
        axes = plot_dataset(ds)
    figure = axes[0].figure
    if args.output:
        figure.savefig(args.output)
        plt.close(figure)
        print(f"plotted run {ds.id} to {args.output}")
    else:
        plt.show()
    return 0


def _add_extra_commands(commands: argparse._SubParsersAction) -> None:
    """Commands of the optional layers (jobs worker, web view), registered here."""
    from .jobs.cli import add_worker_command
    from .web.command import add_serve_command

    add_worker_command(commands)
    add_serve_command(commands)


if __name__ == "__main__":
    sys.exit(main())
