"""The live row of issue 12 inside ``python -m benchmarks``: ``live.py``'s writer throughput.

A row-by-row writer (``ds.add_result(x=, y=)``) with 0 and with 5 in-process
subscribers that read every new row through cursors, each run in a fresh
process, configurations interleaved per repetition, on SQLite and (when a
server answers) PostgreSQL. The goal's figure is ``live.py``'s paired ratio:
the median over repetitions of (rows/s with 5 subscribers / rows/s with none
in the same repetition).
"""

from __future__ import annotations

from typing import Any

from benchmarks import live
from benchmarks.summary import Goal

LIMIT = live.GOAL_RATIO  # >= 0.9x
ENGINE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def config(quick: bool, repeats: int | None, postgres: bool, pg_url: str) -> live.LiveConfig:
    """live.py's defaults (200,000 rows, 11 repeats, min_wait 0 and 100 ms); quick: 20,000
    rows, 1 repeat, min_wait 100 ms (the default of ``subscribe``)."""
    return live.LiveConfig(
        rows=20_000 if quick else 200_000,
        repeats=max(1, repeats or (1 if quick else 11)),
        subs=(0, 5), min_waits=(100.0,) if quick else (0.0, 100.0),
        parts=("throughput",), postgres=postgres, pg_url=pg_url, quick=quick,
    )


def measure(cfg: live.LiveConfig) -> dict[str, Any]:
    """Run the throughput part; its runs, summary and notes."""
    notes: list[str] = []
    backends = live.Backends(cfg, notes)
    try:
        runs = live.measure_throughput(cfg, backends)
    finally:
        backends.close()
    return {"runs": runs, "summary": live.summarize_throughput(runs), "notes": notes,
            "backends": backends.names, "rows": cfg.rows, "repeats": cfg.repeats}


def goals(data: dict[str, Any] | None, engines: list[str], quick: bool) -> list[Goal]:
    """One goal per engine and subscriber min_wait."""
    tag = " (--quick: 20,000 rows, 1 repeat)" if quick else ""
    if data is None:
        return [Goal(f"5 subscribers on a row-by-row writer, {ENGINE_NAMES[e]}: >= {LIMIT}x "
                     "the rows/s without", "NOT MEASURED", "live part not run (--only)")
                for e in engines]
    out = []
    for engine in engines:
        entries = [e for e in data["summary"] if e["backend"] == engine and e["subs"] == 5]
        if not entries:
            out.append(Goal(f"5 subscribers on a row-by-row writer, {ENGINE_NAMES[engine]}: "
                            f">= {LIMIT}x the rows/s without", "NOT MEASURED",
                            "; ".join(data["notes"]) or "not run"))
        for e in entries:
            name = (f"5 subscribers (min_wait {e['min_wait_ms']:g} ms) on a row-by-row writer, "
                    f"{ENGINE_NAMES[engine]}: >= {LIMIT}x the rows/s without{tag}")
            ratio = e.get("paired_ratio")
            if ratio is None:
                err = (e.get("errors") or ["no successful pair"])[-1].strip().splitlines()[-1]
                out.append(Goal(name, "NOT MEASURED", err[:200]))
                continue
            base = next(b for b in data["summary"] if b["backend"] == engine and b["subs"] == 0)
            detail = (f"{e['rows_per_s'] / 1e3:.0f}k rows/s vs {base['rows_per_s'] / 1e3:.0f}k "
                      f"without = {ratio:.2f}x paired (ratio of medians {e['ratio']:.2f}x; "
                      f"{e['repeats_ok']} repeats of {data['rows']:,} rows)")
            out.append(Goal(name, "MET" if ratio >= LIMIT else "NOT MET", detail))
    return out
