"""Printing: the results table and the goals section."""

from __future__ import annotations

from typing import Any

from benchmarks.runner import PG_IMPL, Results

CASE_TITLES = {
    "A": "row-by-row writes, 4 floats per row",
    "B": "bulk write of 4 float64 arrays",
    "C": "rows of one float64 trace + a setpoint",
    "D": "read case B back into numpy arrays",
}
NONE_LOADED = "none of qiskit/matplotlib/pandas/scipy"
HEADER = ("case", "impl", "median s", "rows/s", "MB/s", "peak RSS MB", "+RSS MB",
          "file MB", "time x raw", "file x raw")


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def table_rows(summary: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """One line per (case, implementation)."""
    lines: list[tuple[str, ...]] = []
    for case, per_impl in summary.items():
        for impl, s in per_impl.items():
            if "median_s" not in s:
                lines.append((case, impl, "ERROR", "(below)", "", "", "", "", "", ""))
                continue
            lines.append((
                case, impl, _fmt(s["median_s"], ".3f"), _rate(s["rows_per_s"]),
                _fmt(s.get("mb_per_s"), ".1f"), _fmt(s["peak_rss_mb"], ".0f"),
                _fmt(s["peak_delta_mb"], ".0f"), _fmt(s.get("file_mb"), ".1f"),
                _fmt(s.get("time_vs_raw"), ".2f", "x"), _fmt(s.get("file_vs_raw"), ".2f", "x"),
            ))
    return lines


def format_table(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
    """A plain-text table with right-aligned number columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]

    def fmt(row: tuple[str, ...]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in lines)])


def print_errors(summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The last error of each (case, implementation) that failed in some repetition."""
    for case, per_impl in summary.items():
        for impl, s in per_impl.items():
            if s.get("errors"):
                last = s["errors"][-1].strip().splitlines()[-1]
                print(f"  {case} {impl}: {len(s['errors'])} failed run(s); last error: {last}")


def data_checks(runs: list[dict[str, Any]]) -> str | None:
    """How case D's arrays compared with what case B wrote, per implementation."""
    seen: dict[str, set[str]] = {}
    for r in runs:
        if r.get("case") == "D" and "data" in r:
            seen.setdefault(r["impl"], set()).add(r["data"])
    if not seen:
        return None
    parts = [f"{impl} {'/'.join(sorted(v))}" for impl, v in seen.items()]
    return "case D data read back vs written: " + ", ".join(parts) + " (close: within 1e-12)"


def postgres_lines(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """qdataset on PostgreSQL next to qdataset on SQLite, per case, in rows/s."""
    lines = []
    for case, per_impl in summary.items():
        pg, lite = per_impl.get(PG_IMPL, {}), per_impl.get("qdataset", {})
        if "rows_per_s" not in pg:
            continue
        ratio = (f"{pg['rows_per_s'] / lite['rows_per_s']:.2f}x"
                 if lite.get("rows_per_s") else "-")
        lines.append(f"  {case} {CASE_TITLES[case]}: PostgreSQL {_rate(pg['rows_per_s'])} rows/s,"
                     f" SQLite {_rate(lite.get('rows_per_s'))} rows/s"
                     f" (PostgreSQL/SQLite speed {ratio})")
    return lines


def print_report(results: Results) -> None:
    """The whole human-readable report."""
    cfg = results.config
    print()
    print(f"== results: medians of {cfg['repeats']} run(s), each in a fresh process"
          f"{' (--quick sizes)' if cfg['quick'] else ''} ==")
    for case in results.summary:
        print(f"  {case}: {CASE_TITLES[case]}, {cfg['rows'][case]:,} rows")
    print()
    print(format_table(HEADER, table_rows(results.summary)))
    print_errors(results.summary)
    check = data_checks(results.runs)
    if check:
        print(check)
    print()
    print("rows/s: rows written (A-C) or read (D) per second; MB/s: trace payload (C);")
    print("peak RSS: the child's VmHWM; +RSS: peak above the resident size "
          "when the timed work began.")
    for name, python in results.impls.items():
        print(f"  {name}: {python}")
        if name == PG_IMPL:
            print(f"    (qdataset on PostgreSQL at {cfg.get('pg_url')}, a fresh schema per "
                  "measurement; file MB: the schema's tables + indexes + TOAST; "
                  "'x raw' ratios: against raw sqlite3)")
    from benchmarks.extra_report import print_live, print_scaling

    print_scaling(results)
    print_live(results)
    pg_lines = postgres_lines(results.summary)
    if pg_lines:
        print()
        print("== qdataset on PostgreSQL next to SQLite (same run) ==")
        print("\n".join(pg_lines))
    if results.imports:
        print()
        for module, probe in results.imports.items():
            if "error" in probe:
                print(f"import {module}: ERROR {probe['error'].splitlines()[-1]}")
            else:
                loaded = ", ".join(probe["loaded"]) or NONE_LOADED
                print(f"import {module}: {probe['median_ms']:.0f} ms "
                      f"(median of {len(probe['all_ms'])}), also loaded: {loaded}")
    for note in results.notes:
        print("note: " + note)
    print_goals(results)


def print_goals(results: Results) -> None:
    """Every row of issue 12's table against its goal, then the earlier goals still held."""
    from benchmarks.extra_report import load_line

    cfg = results.config
    print()
    print("== goals: issue 12's table, measured in this run (qdataset; 'raw' is raw sqlite3) ==")
    print(f"  {load_line(results.load)}")
    if cfg["quick"]:
        print("  (--quick sizes: fixed costs weigh more, store size is 100 runs vs 10; "
              "judge the goals on a full run)")
    group = None
    for goal in results.goals:
        if goal.get("group") != group and group is not None:
            print(f"  -- earlier goals ({goal.get('group')}) --")
        group = goal.get("group")
        print(f"  [{goal['status']:>12s}] {goal['goal']}: {goal['detail']}")
