"""``python -m benchmarks.live``: the live-data benchmark (issue 3, item 7).

Two measurements, each child in a fresh process (``live_worker.py``), on
SQLite and on PostgreSQL (skipped with a note when no server answers):

* writer throughput: rows/s of row-by-row ``ds.add_result(x=, y=)`` with 0,
  1 and 5 in-process subscribers reading the new rows through cursors; the
  ratio to 0 subscribers and the goal "5 subscribers within 10% of none";
* notification latency from ``add_result`` to the callback (median, p95,
  max), in-process and from another process, with the store's default
  flush interval and a short one.

It prints tables, saves JSON and exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import pg
from benchmarks.report import _rate, format_table
from benchmarks.runner import ROOT, _last_marker_json, _tail, remove_db

DEFAULT_JSON = "benchmarks/live_results.json"
GOAL_RATIO = 0.90  # 5 subscribers: at least 90% of the rows/s with none
CHILD_TIMEOUT_S = 600


@dataclass
class LiveConfig:
    """What to run, from the command line."""

    rows: int = 200_000
    repeats: int = 11
    subs: tuple[int, ...] = (0, 1, 5)
    min_waits: tuple[float, ...] = (0.0, 100.0)
    flushes: tuple[float, ...] = (0.1, 0.5)
    period_ms: float = 5.0
    duration_s: float = 3.0
    latency_repeats: int = 1
    parts: tuple[str, ...] = ("throughput", "latency")
    postgres: bool = True
    pg_url: str = pg.DEFAULT_PG_URL
    quick: bool = False


def _say(text: str) -> None:
    print(text, flush=True)


class Backends:
    """SQLite files in a temporary folder and PostgreSQL schemas, one per measurement."""

    def __init__(self, cfg: LiveConfig, notes: list[str]) -> None:
        self.cfg = cfg
        self.workdir = Path(tempfile.mkdtemp(prefix="qdataset-live-"))
        self.names = ["sqlite"]
        self._count = 0
        if not cfg.postgres:
            notes.append("PostgreSQL skipped: --no-postgres")
        else:
            problem = pg.check_server(cfg.pg_url)
            if problem is None:
                self.names.append("postgresql")
            else:
                notes.append(f"PostgreSQL skipped: no server answers at {cfg.pg_url} "
                             f"({problem}); start one, point --pg-url at it, or pass "
                             "--no-postgres")

    def make(self, backend: str) -> str:
        """A URL to an empty database for one measurement."""
        self._count += 1
        if backend == "postgresql":
            return pg.create_schema(self.cfg.pg_url, f"live{self._count}")[1]
        path = self.workdir / f"live-{self._count}.db"
        remove_db(path)
        return f"sqlite:///{path}"

    def remove(self, url: str) -> None:
        """Drop the schema or delete the file."""
        if pg.is_pg(url):
            pg.drop_schema(url)
        else:
            remove_db(Path(url[len("sqlite:///"):]))

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _child(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.live_worker", *argv]


def run_child(argv: list[str]) -> dict[str, Any]:
    """One live_worker in a fresh process: its marker JSON, or {"error": ...}."""
    try:
        proc = subprocess.run(_child(argv), cwd=ROOT, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    data = _last_marker_json(proc.stdout) if proc.returncode == 0 else None
    if data is None:
        return {"error": f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}"}
    return data


# -- (a) writer throughput ---------------------------------------------------------------
def throughput_configs(cfg: LiveConfig) -> list[tuple[int, float]]:
    """(subscribers, min_wait ms) per repetition; 0 subscribers once (min_wait is moot)."""
    configs: list[tuple[int, float]] = []
    for subs in cfg.subs:
        for mw in ([cfg.min_waits[0]] if subs == 0 else cfg.min_waits):
            configs.append((subs, mw))
    return configs


def measure_throughput(cfg: LiveConfig, backends: Backends) -> list[dict[str, Any]]:
    """Every (backend, subscribers, min_wait), repeated; configurations interleaved."""
    runs = []
    for backend in backends.names:
        _say(f"throughput on {backend}: {cfg.rows:,} rows, {cfg.repeats} repeat(s)")
        for rep in range(cfg.repeats):
            for subs, mw in throughput_configs(cfg):
                url = backends.make(backend)
                try:
                    result = run_child(["throughput", url, str(cfg.rows), str(subs), str(mw)])
                finally:
                    backends.remove(url)
                result.update(backend=backend, subs=subs, min_wait_ms=mw, repeat=rep,
                              rows=cfg.rows)
                runs.append(result)
                if "error" in result:
                    text = "ERROR " + result["error"].splitlines()[-1][:150]
                else:
                    text = (f"{result['seconds']:.3f} s = {_rate(cfg.rows / result['seconds'])}"
                            f" rows/s, subscribers read {result['sub_rows']} rows")
                _say(f"  {subs} sub(s), min_wait {mw:g} ms #{rep + 1}: {text}")
    return runs


def summarize_throughput(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median rows/s per (backend, subscribers, min_wait) and the ratio to 0 subscribers."""
    rows_out = []
    keys = list(dict.fromkeys((r["backend"], r["subs"], r["min_wait_ms"]) for r in runs))
    base: dict[str, float] = {}
    for backend, subs, mw in keys:
        mine = [r for r in runs if (r["backend"], r["subs"], r["min_wait_ms"]) == (backend, subs,
                                                                                mw)]
        ok = [r for r in mine if "error" not in r]
        entry: dict[str, Any] = {"backend": backend, "subs": subs, "min_wait_ms": mw,
                                 "errors": [r["error"] for r in mine if "error" in r]}
        if ok:
            seconds = statistics.median(r["seconds"] for r in ok)
            rate = ok[0]["rows"] / seconds
            if subs == 0:
                base[backend] = rate
            entry.update(
                median_s=seconds, rows_per_s=rate, repeats_ok=len(ok),
                all_s=[r["seconds"] for r in ok],
                close_s=statistics.median(r["close_s"] for r in ok),
                calls=statistics.median(statistics.mean(r["sub_calls"]) for r in ok)
                if subs else None,
                reads_ok=all(n == r["rows"] for r in ok for n in r["sub_rows"])
                and all(all(r["sub_complete"]) for r in ok),
            )
        rows_out.append(entry)
    for entry in rows_out:
        b = base.get(entry["backend"])
        entry["ratio"] = entry["rows_per_s"] / b if b and "rows_per_s" in entry else None
        entry["paired_ratio"] = paired_ratio(runs, entry["backend"], entry["subs"],
                                             entry["min_wait_ms"])
    return rows_out


def paired_ratio(runs: list[dict[str, Any]], backend: str, subs: int,
                 min_wait_ms: float) -> float | None:
    """Median over repetitions of (rows/s of this configuration / rows/s of 0 subscribers
    in the same repetition).

    A repetition runs every configuration back to back, so both runs of a pair
    share the machine's state of that moment (a shared 2-core VM drifts by
    +-15% over a minute); the median of the per-pair ratios removes that drift,
    which the ratio of the two medians does not.
    """
    def seconds(s: int, mw: float | None, rep: int) -> float | None:
        for r in runs:
            if (r["backend"], r["subs"], r["repeat"]) == (backend, s, rep) \
                    and (mw is None or r["min_wait_ms"] == mw) and "error" not in r:
                return r["seconds"]
        return None

    ratios = []
    for rep in sorted({r["repeat"] for r in runs if r["backend"] == backend}):
        mine, none = seconds(subs, min_wait_ms, rep), seconds(0, None, rep)
        if mine and none:
            ratios.append(none / mine)  # equal rows: the rows/s ratio
    return statistics.median(ratios) if ratios else None


def throughput_goals(summary: list[dict[str, Any]], subs: int = 5) -> list[str]:
    """MET / NOT MET per backend and min_wait for ``subs`` subscribers vs none."""
    lines = []
    for entry in summary:
        if entry["subs"] != subs:
            continue
        name = (f"{entry['backend']}, {subs} subscribers (min_wait {entry['min_wait_ms']:g} ms)"
                f" >= {GOAL_RATIO:.2f}x the rows/s of none")
        if entry.get("paired_ratio") is None:
            lines.append(f"  [NOT MEASURED] {name}")
            continue
        status = "MET" if entry["paired_ratio"] >= GOAL_RATIO else "NOT MET"
        lines.append(f"  [{status:>12s}] {name}: {entry['paired_ratio']:.2f}x paired "
                     f"(ratio of medians {entry['ratio']:.2f}x)")
    return lines


def print_throughput(summary: list[dict[str, Any]], cfg: LiveConfig) -> None:
    header = ("backend", "subscribers", "min_wait ms", "median s", "rows/s", "x 0 subs",
              "paired", "calls/sub", "close s", "reads ok")
    lines = []
    for e in summary:
        if "rows_per_s" not in e:
            lines.append((e["backend"], str(e["subs"]), f"{e['min_wait_ms']:g}", "ERROR",
                          "", "", "", "", "", ""))
            continue
        lines.append((
            e["backend"], str(e["subs"]), "-" if e["subs"] == 0 else f"{e['min_wait_ms']:g}",
            f"{e['median_s']:.3f}", _rate(e["rows_per_s"]),
            "-" if e["ratio"] is None else f"{e['ratio']:.2f}x",
            "-" if e["subs"] == 0 or e["paired_ratio"] is None else f"{e['paired_ratio']:.2f}x",
            "-" if e["calls"] is None else f"{e['calls']:.0f}", f"{e['close_s']:.2f}",
            "-" if e["subs"] == 0 else ("yes" if e["reads_ok"] else "NO"),
        ))
    _say("")
    _say(f"== (a) writer throughput: {cfg.rows:,} x ds.add_result(x=, y=) + mark_completed, "
         f"median of {cfg.repeats}, each in a fresh process ==")
    _say(format_table(header, lines))
    _say("median s: DataSet(...) + the add_result loop + mark_completed; x 0 subs: ratio of "
         "the median rows/s; paired: median over repetitions of the ratio to the 0-subscriber "
         "run of the same repetition (the goal's measure); close s: store.close "
         "afterwards (waits for the subscribers' final reads); calls/sub: callbacks per "
         "subscriber (the final one included); reads ok: every subscriber read all rows "
         "through its cursor and saw completion.")
    for entry in summary:
        for err in entry["errors"][-1:]:
            _say(f"  error {entry['backend']} {entry['subs']} subs: {err.splitlines()[-1]}")
    _say("")
    _say("== goal (issue 3): the writer with 5 subscribers within 10% of its speed with none ==")
    for line in throughput_goals(summary):
        _say(line)


# -- (b) notification latency ------------------------------------------------------------
def _latency_stats(added: list[float], seen: list[float]) -> dict[str, Any]:
    n = min(len(added), len(seen))
    lat = (np.asarray(seen[:n]) - np.asarray(added[:n])) * 1000.0
    out: dict[str, Any] = {"rows": len(added), "seen": len(seen), "missing": len(added) - n}
    if n:
        out.update(median_ms=float(np.median(lat)), p95_ms=float(np.percentile(lat, 95)),
                   max_ms=float(lat.max()), min_ms=float(lat.min()))
    return out


def latency_inprocess(url: str, flush: float, cfg: LiveConfig) -> dict[str, Any]:
    result = run_child(["latency", url, str(flush), str(cfg.period_ms), str(cfg.duration_s)])
    if "error" in result:
        return result
    return {**_latency_stats(result["added"], result["seen"]), "calls": result["calls"],
            "added": result["added"], "seen_at": result["seen"]}


def latency_crossprocess(url: str, flush: float, cfg: LiveConfig,
                         workdir: Path) -> dict[str, Any]:
    """Writer and subscriber in two fresh processes; time.time() stamps compared."""
    tag = f"{time.monotonic_ns()}"
    ready, out_w, out_s = (workdir / f"{tag}.{n}" for n in ("ready", "writer", "sub"))
    timeout = cfg.duration_s + flush + 60
    writer = subprocess.Popen(
        _child(["writer", url, str(flush), str(cfg.period_ms), str(cfg.duration_s),
                str(ready), str(out_w)]),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sub = None
    try:
        run_id = None
        assert writer.stdout is not None
        for line in writer.stdout:
            if line.startswith("RUN_ID "):
                run_id = line.split(None, 1)[1].strip()
                break
        if run_id is None:
            writer.wait(30)
            return {"error": f"writer: exit {writer.returncode}: {_tail(writer.stderr.read())}"}
        sub = subprocess.Popen(
            _child(["subscriber", url, run_id, str(ready), str(out_s), str(timeout)]),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        w_out, w_err = writer.communicate(timeout=timeout + 60)
        s_out, s_err = sub.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"TimeoutExpired: {exc}"}
    finally:
        for proc in (writer, sub):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    if writer.returncode != 0:
        return {"error": f"writer: exit {writer.returncode}: {_tail(w_err)}"}
    s_data = _last_marker_json(s_out) if sub.returncode == 0 else None
    if s_data is None:
        return {"error": f"subscriber: exit {sub.returncode}: {_tail(s_err)}"}
    added = json.loads(out_w.read_text(encoding="utf-8"))
    seen = json.loads(out_s.read_text(encoding="utf-8"))
    return {**_latency_stats(added, seen), "calls": s_data["calls"],
            "completed_seen": s_data["completed_seen"], "added": added, "seen_at": seen}


def measure_latency(cfg: LiveConfig, backends: Backends) -> list[dict[str, Any]]:
    runs = []
    for backend in backends.names:
        _say(f"latency on {backend}: one row every {cfg.period_ms:g} ms for "
             f"{cfg.duration_s:g} s, subscriber min_wait=0 min_count=1")
        for rep in range(cfg.latency_repeats):
            for flush in cfg.flushes:
                for where in ("in-process", "cross-process"):
                    url = backends.make(backend)
                    try:
                        if where == "in-process":
                            result = latency_inprocess(url, flush, cfg)
                        else:
                            result = latency_crossprocess(url, flush, cfg, backends.workdir)
                    finally:
                        backends.remove(url)
                    result.update(backend=backend, where=where, flush=flush, repeat=rep)
                    runs.append(result)
                    if "error" in result:
                        text = "ERROR " + result["error"].splitlines()[-1][:150]
                    elif "median_ms" not in result:
                        text = "no rows seen"
                    else:
                        text = (f"median {result['median_ms']:.1f} ms, p95 "
                                f"{result['p95_ms']:.1f} ms, seen {result['seen']}/"
                                f"{result['rows']}")
                    _say(f"  {where:13s} flush {flush:g} s #{rep + 1}: {text}")
    return runs


def summarize_latency(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Latency statistics per (backend, where, flush) over all repetitions' rows."""
    out = []
    keys = list(dict.fromkeys((r["backend"], r["where"], r["flush"]) for r in runs))
    for key in keys:
        mine = [r for r in runs if (r["backend"], r["where"], r["flush"]) == key]
        ok = [r for r in mine if "error" not in r and "added" in r]
        entry: dict[str, Any] = {"backend": key[0], "where": key[1], "flush": key[2],
                                 "errors": [r["error"] for r in mine if "error" in r]}
        if ok:
            added = [t for r in ok for t in r["added"][:len(r["seen_at"])]]
            seen = [t for r in ok for t in r["seen_at"][:len(r["added"])]]
            entry.update(_latency_stats(added, seen))
            entry["rows"] = sum(r["rows"] for r in ok)
            entry["missing"] = sum(r["missing"] for r in ok)
            entry["calls"] = sum(r["calls"] for r in ok)
        out.append(entry)
    return out


def print_latency(summary: list[dict[str, Any]], cfg: LiveConfig) -> None:
    header = ("backend", "where", "flush s", "rows", "median ms", "p95 ms", "max ms",
              "callbacks", "missed")
    lines = []
    for e in summary:
        if "median_ms" not in e:
            lines.append((e["backend"], e["where"], f"{e['flush']:g}", "ERROR", "", "", "", "",
                          ""))
            continue
        lines.append((e["backend"], e["where"], f"{e['flush']:g}", str(e["rows"]),
                      f"{e['median_ms']:.1f}", f"{e['p95_ms']:.1f}", f"{e['max_ms']:.1f}",
                      str(e["calls"]), str(e["missing"])))
    _say("")
    _say(f"== (b) notification latency, add_result -> callback: one row every "
         f"{cfg.period_ms:g} ms for {cfg.duration_s:g} s, min_wait=0, min_count=1 ==")
    _say(format_table(header, lines))
    _say("flush s: the writer's connect(url, flush_interval=...) (0.1 is the default); "
         "in-process: subscriber on the writing DataSet (perf_counter stamps); cross-process: "
         "subscriber in another process via connect(url).read_dataset(id) (time.time() "
         "stamps; SQLite: PRAGMA data_version polled at max(min_wait, 10 ms); PostgreSQL: "
         "LISTEN/NOTIFY); missed: rows never seen by the callback.")
    for entry in summary:
        for err in entry["errors"][-1:]:
            _say(f"  error {entry['backend']} {entry['where']} flush {entry['flush']:g}: "
                 f"{err.splitlines()[-1]}")


# -- command line ----------------------------------------------------------------------
def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(",") if t.strip())


def parse_args(argv: list[str] | None = None) -> tuple[LiveConfig, str]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live",
        description="Live data (issue 3): writer rows/s with 0/1/5 subscribers, and "
                    "notification latency in-process and cross-process, on SQLite and "
                    "PostgreSQL.")
    add = parser.add_argument
    add("--quick", action="store_true",
        help="20,000 rows, 1 repeat, 1 s of latency rows (~1 min)")
    add("--rows", type=int, default=None, help="rows per throughput run (200,000)")
    add("--repeats", type=int, default=None, help="throughput runs per configuration (11)")
    add("--subs", default="0,1,5", help="subscriber counts (default 0,1,5; 0 is the baseline)")
    add("--min-wait", default="0,100",
        help="subscribers' min_wait in ms for the throughput runs (default 0,100)")
    add("--flush", default="0.1,0.5", help="flush intervals for the latency runs (s)")
    add("--period-ms", type=float, default=5.0, help="latency: one row every ... ms (5)")
    add("--duration", type=float, default=None, help="latency: seconds of rows (3)")
    add("--latency-repeats", type=int, default=1, help="latency runs per configuration (1)")
    add("--only", default="throughput,latency", help="throughput, latency or both")
    add("--no-postgres", action="store_true", help="SQLite only")
    add("--pg-url", default=pg.DEFAULT_PG_URL,
        help=f"PostgreSQL server (default: $QDATASET_BENCH_PG_URL or {pg.DEFAULT_PG_URL})")
    add("--json", default=DEFAULT_JSON, help=f"where to save results ({DEFAULT_JSON})")
    ns = parser.parse_args(argv)
    parts = tuple(p.strip() for p in ns.only.split(",") if p.strip())
    bad = [p for p in parts if p not in ("throughput", "latency")]
    if bad:
        parser.error(f"unknown part(s) {', '.join(bad)}; choose throughput and/or latency")
    subs = tuple(int(s) for s in ns.subs.split(",") if s.strip())
    if 0 not in subs:
        subs = (0, *subs)
    cfg = LiveConfig(
        rows=ns.rows or (20_000 if ns.quick else 200_000),
        repeats=max(1, ns.repeats or (1 if ns.quick else 11)),
        subs=subs, min_waits=_floats(ns.min_wait), flushes=_floats(ns.flush),
        period_ms=ns.period_ms, duration_s=ns.duration or (1.0 if ns.quick else 3.0),
        latency_repeats=max(1, ns.latency_repeats), parts=parts,
        postgres=not ns.no_postgres, pg_url=ns.pg_url, quick=ns.quick,
    )
    return cfg, ns.json


def main(argv: list[str] | None = None) -> int:
    cfg, json_path = parse_args(argv)
    notes: list[str] = []
    _say(f"qdataset live-data benchmark ({', '.join(cfg.parts)}"
         f"{', quick sizes' if cfg.quick else ''}); python {sys.version.split()[0]}")
    backends = Backends(cfg, notes)
    for note in notes:
        _say("note: " + note)
    saved: dict[str, Any] = {"config": cfg.__dict__, "notes": notes}
    try:
        if "throughput" in cfg.parts:
            saved["throughput_runs"] = measure_throughput(cfg, backends)
        if "latency" in cfg.parts:
            saved["latency_runs"] = measure_latency(cfg, backends)
    finally:
        backends.close()
    if "throughput_runs" in saved:
        saved["throughput"] = summarize_throughput(saved["throughput_runs"])
        print_throughput(saved["throughput"], cfg)
    if "latency_runs" in saved:
        saved["latency"] = summarize_latency(saved["latency_runs"])
        print_latency(saved["latency"], cfg)
    for note in notes:
        _say("note: " + note)
    target = Path(json_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(saved, indent=1, default=str) + "\n", encoding="utf-8")
    _say(f"\nresults saved to {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
