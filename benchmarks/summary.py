"""Medians per (case, implementation), ratios against raw sqlite3, and the issue's goals."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

IMPORT_LIMIT_MS = 150.0
FORBIDDEN_IMPORTS = ("qiskit", "matplotlib")
READ_MEMORY_LIMIT = 1.5  # case D: peak memory of the read / size of the arrays returned
EARLIER = "issue 4"  # goals of the first benchmark issue that still hold


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize_one(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the successful repetitions of one (case, implementation)."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {
        "repeats_ok": len(ok),
        "errors": [r["error"] for r in runs if "error" in r],
    }
    if not ok:
        return out
    seconds = _median(ok, "seconds")
    rows = ok[0]["rows"]
    out.update(
        median_s=seconds,
        all_s=[r["seconds"] for r in ok],
        rows=rows,
        rows_per_s=rows / seconds if seconds else None,
        peak_rss_mb=_median(ok, "peak_rss_mb"),
        peak_delta_mb=_median(ok, "peak_delta_mb"),
        file_mb=_median(ok, "file_mb"),
        input_mb=_median(ok, "input_mb"),
        result_mb=_median(ok, "result_mb"),
        python=ok[0].get("python"),
    )
    if any(r.get("data") == "wrong" for r in ok):
        out["errors"].append("data read back differs from the data written by case B")
    payload = _median(ok, "payload_mb")
    if payload is not None and seconds:
        out.update(payload_mb=payload, mb_per_s=payload / seconds)
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """case -> impl -> medians, with ``time_vs_raw`` and ``file_vs_raw`` ratios."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for case in sorted({r["case"] for r in runs}):
        per_impl: dict[str, dict[str, Any]] = {}
        for impl in dict.fromkeys(r["impl"] for r in runs if r["case"] == case):
            mine = [r for r in runs if r["case"] == case and r["impl"] == impl]
            per_impl[impl] = summarize_one(mine)
        raw = per_impl.get("raw", {})
        for stats in per_impl.values():
            stats["time_vs_raw"] = _ratio(stats.get("median_s"), raw.get("median_s"))
            stats["file_vs_raw"] = _ratio(stats.get("file_mb"), raw.get("file_mb"))
        summary[case] = per_impl
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class Goal:
    """One goal of the issue and whether this run met it."""

    name: str
    status: str  # "MET", "NOT MET" or "NOT MEASURED"
    detail: str
    group: str = "issue 12"  # which issue's table the goal comes from

    def as_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"goal": self.name, "status": self.status, "detail": self.detail,
                "group": self.group}


def _time_goal(summary: dict[str, Any], case: str, limit: float, name: str) -> Goal:
    qd = summary.get(case, {}).get("qdataset", {})
    raw = summary.get(case, {}).get("raw", {})
    ratio = qd.get("time_vs_raw")
    if ratio is None:
        return Goal(name, "NOT MEASURED", f"no qdataset and raw medians for case {case}")
    detail = (f"{qd['median_s']:.3f} s vs raw {raw['median_s']:.3f} s = {ratio:.2f}x "
              f"(limit {limit}x)") + _layout_floor(summary, case, "median_s", "s")
    return Goal(name, "MET" if ratio <= limit else "NOT MET", detail)


def _layout_floor(summary: dict[str, Any], case: str, key: str, unit: str) -> str:
    """What raw sqlite3 needs in qdataset's table layout (``raw-layout``), and so how
    much of the ratio is the layout's and how much qdataset's own code's."""
    per_impl = summary.get(case, {})
    qd, raw, floor = (per_impl.get(i, {}).get(key) for i in ("qdataset", "raw", "raw-layout"))
    if not (qd and raw and floor):
        return ""
    shown = f"{floor:.3f} s" if unit == "s" else f"{floor:.1f} {unit}"
    return (f"; raw sqlite3 into qdataset's layout: {shown} = {floor / raw:.2f}x raw, "
            f"qdataset = {qd / floor:.2f}x that")


def _memory_goal(summary: dict[str, Any]) -> Goal:
    name = "B peak memory <= 2x the input arrays"
    qd = summary.get("B", {}).get("qdataset", {})
    if qd.get("peak_delta_mb") is None or not qd.get("input_mb"):
        return Goal(name, "NOT MEASURED", "no qdataset result for case B", EARLIER)
    ratio = qd["peak_delta_mb"] / qd["input_mb"]
    resident = qd["peak_rss_mb"] - qd["peak_delta_mb"]
    detail = (f"write needed {qd['peak_delta_mb']:.0f} MB over the resident {resident:.0f} MB "
              f"for {qd['input_mb']:.0f} MB of input = {ratio:.2f}x "
              f"(peak RSS {qd['peak_rss_mb']:.0f} MB)")
    return Goal(name, "MET" if ratio <= 2.0 else "NOT MET", detail, EARLIER)


def _read_memory_goal(summary: dict[str, Any], impl: str, engine: str) -> Goal:
    """Case D: the read's peak RSS above the resident size <= 1.5x the arrays returned."""
    name = f"D read peak memory <= {READ_MEMORY_LIMIT}x the result, {engine}"
    qd = summary.get("D", {}).get(impl, {})
    if qd.get("peak_delta_mb") is None or not qd.get("result_mb"):
        return Goal(name, "NOT MEASURED", f"no {impl} result for case D")
    ratio = qd["peak_delta_mb"] / qd["result_mb"]
    detail = (f"read needed {qd['peak_delta_mb']:.0f} MB over the resident "
              f"{qd['peak_rss_mb'] - qd['peak_delta_mb']:.0f} MB for "
              f"{qd['result_mb']:.0f} MB of arrays = {ratio:.2f}x")
    return Goal(name, "MET" if ratio <= READ_MEMORY_LIMIT else "NOT MET", detail)


def _file_goal(summary: dict[str, Any]) -> Goal:
    name = "B database size <= 1.1x raw"
    qd = summary.get("B", {}).get("qdataset", {})
    ratio = qd.get("file_vs_raw")
    if ratio is None:
        return Goal(name, "NOT MEASURED", "no qdataset and raw file sizes for case B", EARLIER)
    raw_mb = summary["B"]["raw"]["file_mb"]
    detail = (f"{qd['file_mb']:.1f} MB vs raw {raw_mb:.1f} MB = {ratio:.2f}x"
              + _layout_floor(summary, "B", "file_mb", "MB"))
    return Goal(name, "MET" if ratio <= 1.1 else "NOT MET", detail, EARLIER)


def _import_goal(imports: dict[str, Any]) -> Goal:
    name = f"import qdataset <= {IMPORT_LIMIT_MS:.0f} ms, without qiskit or matplotlib"
    probe = imports.get("qdataset")
    if probe is None or "error" in probe:
        return Goal(name, "NOT MEASURED", (probe or {}).get("error", "qdataset not importable"),
                    EARLIER)
    bad = [m for m in probe["loaded"] if m in FORBIDDEN_IMPORTS]
    met = probe["median_ms"] <= IMPORT_LIMIT_MS and not bad
    detail = f"{probe['median_ms']:.0f} ms; " + (f"loaded {', '.join(bad)}" if bad else
                                                 "qiskit and matplotlib not loaded")
    return Goal(name, "MET" if met else "NOT MET", detail, EARLIER)


def evaluate_goals(summary: dict[str, Any], imports: dict[str, Any],
                   scale: list[Goal] | None = None, live: list[Goal] | None = None,
                   pg_engine: bool = True) -> list[dict[str, str]]:
    """Every row of issue 12's table in its order (store size, A-D, live), then the
    earlier goals of issue 4 that still hold; each MET / NOT MET / NOT MEASURED."""
    goals = [
        *(scale or []),
        _time_goal(summary, "A", 2.0, "A row-by-row add_result <= 2x raw"),
        _time_goal(summary, "B", 0.8, "B bulk add_results <= 0.8x raw"),
        _time_goal(summary, "C", 1.5, "C array traces <= 1.5x raw"),
        _time_goal(summary, "D", 0.7, "D read get_data <= 0.7x raw"),
        _read_memory_goal(summary, "qdataset", "SQLite"),
    ]
    if pg_engine:
        goals.append(_read_memory_goal(summary, "qdataset-pg", "PostgreSQL"))
    goals += [*(live or []), _memory_goal(summary), _import_goal(imports), _file_goal(summary)]
    return [g.as_dict() for g in goals]
