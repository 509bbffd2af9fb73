"""Printing the parts issue 12 added: the store-size table, the live table, the load."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.report import _rate, format_table
from benchmarks.runner import Results

SCALE_HEADER = ("engine", "names", "runs", "create ms", "x 10 runs", "connect+read ms",
                "x 10 runs", "probes", "populated")
LIVE_HEADER = ("engine", "subscribers", "min_wait ms", "median s", "rows/s", "paired",
               "reads ok")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _populated(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "ERROR"
    how = "cached" if row["added_now"] == 0 else f"+{row['added_now']:,} now"
    short = "" if row["complete"] else f", SHORT of {row['count']:,}"
    short += ", a run FAILED" if row.get("failure") else ""
    return f"{how} ({row['populate_s']:.0f} s in all{short})"


def print_scaling(results: Results) -> None:
    """One line per populated store: median probe times and the ratio to 10 runs."""
    data = results.scaling
    if not data.get("rows"):
        return
    lines = []
    for row in data["rows"]:
        runs = f"{row['runs']:,}"
        if row["engine"] != "sqlite" and row.get("held_max", row["runs"]) > row["runs"]:
            runs += f" (+{row['held_max'] - row['runs']})"
        lines.append((row["engine"], row["names"], runs, _ms(row.get("create_s")),
                      _x(row.get("create_ratio")), _ms(row.get("read_s")),
                      _x(row.get("read_ratio")), str(row.get("probes", 0)), _populated(row)))
    print()
    print("== store size (issue 12): medians of fresh-process probes against populated stores ==")
    print(format_table(SCALE_HEADER, lines))
    print("create: DataSet(...) with 2-3 float/int parameters + add_results of 5 rows + "
          "mark_completed, after an untimed connect; connect+read: connect() + read_dataset + "
          "get_data of every parameter of the store's middle run, in a new process (after "
          "`import qdataset`). names: 'same' = 3 layouts in rotation, 'own' = parameter names "
          "of each run's own. SQLite probes write to a copy of the cached store; PostgreSQL "
          "probes write into the populated schema (+n: runs the earlier probes added).")
    print(f"stores: populated through the public API, keyed by qdataset source {data['source_key']}"
          f" ({data['source']})")
    for row in data["rows"]:
        for err in row["errors"][-1:]:
            print(f"  error {row['engine']} {row['names']} {row['count']:,}: "
                  f"{err.strip().splitlines()[-1][:200]}")


def print_live(results: Results) -> None:
    """Writer rows/s with 0 and 5 subscribers, per engine and min_wait."""
    data = results.live
    if not data:
        return
    lines = []
    for e in data["summary"]:
        if "rows_per_s" not in e:
            lines.append((e["backend"], str(e["subs"]), f"{e['min_wait_ms']:g}", "ERROR", "",
                          "", ""))
            continue
        lines.append((e["backend"], str(e["subs"]),
                      "-" if e["subs"] == 0 else f"{e['min_wait_ms']:g}", f"{e['median_s']:.3f}",
                      _rate(e["rows_per_s"]),
                      "-" if e["subs"] == 0 or e["paired_ratio"] is None
                      else f"{e['paired_ratio']:.2f}x",
                      "-" if e["subs"] == 0 else ("yes" if e["reads_ok"] else "NO")))
    print()
    print(f"== live (issue 12): {data['rows']:,} x add_result(x=, y=) + mark_completed, "
          f"median of {data['repeats']}, each in a fresh process ==")
    print(format_table(LIVE_HEADER, lines))
    print("paired: median over repetitions of rows/s with 5 subscribers / rows/s with none in "
          "the same repetition (benchmarks/live.py); reads ok: every subscriber read all rows.")


def load_line(load: list[Any]) -> str:
    """The machine's load averages at the start and end of the run."""
    if not load:
        return "load average: unknown"
    parts = [f"{when} {a:.2f} / {b:.2f} / {c:.2f}" for when, (a, b, c) in load]
    return "load average (1 / 5 / 15 min) at " + ", at ".join(parts) + f" ({os.cpu_count()} CPUs)"
