"""Follow a run live: a matplotlib plot updated from a qdataset subscription.

In one terminal:   qdataset demo --delay 0.005
In another:        python examples/live_plot.py RUN_ID     (or --latest)

For watching runs, ``qdataset serve --open`` (a live page per run, in a browser) is
the recommended way; this script stays as an example of subscriptions and cursors.

The subscription's callback runs on qdataset's notifier thread; it only
reads the new rows through a cursor and hands them over.  Drawing happens
in the main thread, as matplotlib requires.  With ``--save out.png`` it runs
headless and writes the final picture when the run completes.
"""

from __future__ import annotations

import argparse
import queue
import sys

import numpy as np

import qdataset

#: matplotlib backends that draw to files only: no window can be shown with them.
_NO_WINDOW = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", nargs="?", help="the run to follow")
    parser.add_argument("--latest", action="store_true", help="follow the newest run")
    parser.add_argument("--url", help="store URL (default: the default store)")
    parser.add_argument("--save", help="run headless; write the final plot to this file")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up after this many seconds (default 600)")
    args = parser.parse_args(argv)

    import matplotlib

    if args.save:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not args.save and plt.get_backend().lower() in _NO_WINDOW:
        # Without a display matplotlib falls back to a file-only backend: say so, do not
        # "show" nothing and exit 0.
        print(f"live_plot: no display for a plot window (matplotlib backend "
              f"{plt.get_backend()!r}); give --save out.png, or watch in a browser: "
              "qdataset serve --open", file=sys.stderr)
        return 2

    store = qdataset.connect(args.url)
    if args.latest or not args.run_id:
        runs = store.runs()
        if not runs:
            print("no runs in", store.url, file=sys.stderr)
            return 1
        run_id = runs[0].id
    else:
        run_id = args.run_id
    ds = store.read_dataset(run_id)
    specs = ds.get_parameters()
    setpoints = [s.name for s in specs if s.role == "setpoint"]
    outputs = [s.name for s in specs if s.role == "output" and not s.is_array]
    if not setpoints or not outputs:
        print(f"run {run_id} has no scalar setpoint/output pair to plot", file=sys.stderr)
        return 1
    # 1-D: output against the setpoint; 2-D: a colour map over both setpoints.
    names = [*setpoints[:2], outputs[0]]

    cursor = ds.cursor(0)
    updates: queue.Queue = queue.Queue()

    def on_new_rows(dataset, length, state):  # notifier thread: read, do not draw
        columns = cursor.read(*names)
        updates.put((columns, dataset.is_marked_complete and cursor.position >= length))

    ds.subscribe(on_new_rows, min_wait=200)
    figure, axes = plt.subplots()
    titles = {s.name: f"{s.label or s.name} ({s.unit})" if s.unit else s.label or s.name
              for s in specs}
    axes.set_xlabel(titles[names[0]])
    axes.set_ylabel(titles[names[1]])
    if len(names) == 3:
        artist = axes.scatter([], [], c=[], s=12, marker="s", cmap="viridis")
        figure.colorbar(artist, ax=axes, label=titles[names[2]])
    else:
        (artist,) = axes.plot([], [], ".", markersize=3)
    collected: list[list[np.ndarray]] = [[] for _ in names]
    done = False
    waited = 0.0
    while not done and waited < args.timeout:
        try:
            columns, done = updates.get(timeout=0.2)
        except queue.Empty:
            waited += 0.2
            if not args.save:
                plt.pause(0.01)
            continue
        for store_list, column in zip(collected, columns, strict=True):
            store_list.append(column)
        data = [np.concatenate(parts) for parts in collected]
        if len(names) == 3:
            artist.set_offsets(np.column_stack(data[:2]))
            artist.set_array(data[2])
            artist.autoscale()
            axes.update_datalim(np.column_stack(data[:2]))
        else:
            artist.set_data(data[0], data[1])
            axes.relim()
        axes.autoscale_view()
        axes.set_title(f"{run_id}\n{len(data[0])} points" + (" (completed)" if done else ""))
        if not args.save:
            plt.pause(0.01)
    points = sum(len(part) for part in collected[0])
    if args.save:
        figure.savefig(args.save)
        print(f"saved {args.save}: {points} points, completed={done}")
    else:
        plt.show()
    store.close()
    return 0 if done else 2


if __name__ == "__main__":
    sys.exit(main())
