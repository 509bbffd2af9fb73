"""Store-size cases (issue 12): a run created, and a run read, with N runs already stored.

For every engine, names mode and size, a store populated once (``stores.py``)
is probed by fresh processes (``scaling_worker probe``): each times
``connect`` + reading the store's middle run, then the creation of one more
small run. Probes go round the stores in turn, so drift on a shared machine
hits every size alike; the medians per size are compared with the smallest
size (10 runs).
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from benchmarks.runner import run_python
from benchmarks.stores import Populated, StoreCache
from benchmarks.summary import Goal

SMALL = 10
FULL = 10_000
BIG = 100_000
QUICK = 100
CREATE_LIMIT = {"same": 1.5, "own": 3.0}
READ_LIMIT = 1.5


def sizes(quick: bool, big: bool, names: str) -> tuple[int, ...]:
    """Store sizes to measure: 10 and 10,000 (quick: 100); 100,000 with --big (same names)."""
    if quick:
        return (SMALL, QUICK)
    return (SMALL, FULL, BIG) if big and names == "same" else (SMALL, FULL)


def _say(text: str) -> None:
    print(text, flush=True)


def _probe_line(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[-1][:150]
    return (f"connect+read {result['read']['seconds'] * 1000:.1f} ms, "
            f"create {result['create']['seconds'] * 1000:.1f} ms")


def measure(engines: list[str], cache: StoreCache, probes: int, quick: bool,
            big: bool) -> dict[str, Any]:
    """Populate (or reuse) every store, then ``probes`` rounds of probes; runs + stores."""
    wanted = [(engine, count, names) for engine in engines for names in ("same", "own")
              for count in sizes(quick, big, names)]
    stores: list[Populated] = cache.get_all(wanted)
    for store in stores:
        _say("  " + store.describe())
    runs: list[dict[str, Any]] = []
    for rep in range(probes):
        for i, store in enumerate(stores):
            run_id = store.ids.get("middle") or store.ids.get("first")
            if store.error or run_id is None:
                continue
            url = cache.probe_url(store)
            held = store.runs + (rep if store.engine != "sqlite" else 0)  # PG keeps probe runs
            result = run_python(sys.executable, ["-m", "benchmarks.scaling_worker", "probe",
                                                 url, store.names, run_id])
            cache.release(url)
            result.update(store=i, engine=store.engine, names=store.names, count=store.count,
                          held=held, repeat=rep)
            runs.append(result)
            _say(f"  {store.engine:10s} {store.names} {store.count:>7,} #{rep + 1}: "
                 f"{_probe_line(result)}")
    return {"stores": [s.__dict__ | {"complete": s.complete} for s in stores], "runs": runs,
            "source_key": cache.key, "source": cache.label}


def summarize(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Median create and connect+read time per store, and the ratio to the 10-run store."""
    rows = []
    for i, store in enumerate(data["stores"]):
        mine = [r for r in data["runs"] if r["store"] == i]
        ok = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {k: store[k] for k in ("engine", "names", "count", "runs",
                                                    "complete", "error", "failure")}
        row["errors"] = [r["error"] for r in mine if "error" in r]
        row["populate_s"], row["added_now"] = store["populate_s"], store["added_now"]
        if ok:
            row.update(
                probes=len(ok),
                create_s=statistics.median(r["create"]["seconds"] for r in ok),
                read_s=statistics.median(r["read"]["seconds"] for r in ok),
                all_create_s=[r["create"]["seconds"] for r in ok],
                all_read_s=[r["read"]["seconds"] for r in ok],
                held_max=max(r["held"] for r in ok),
            )
        rows.append(row)
    for row in rows:
        base = next((b for b in rows if (b["engine"], b["names"]) == (row["engine"], row["names"])
                     and b["count"] == SMALL and "create_s" in b), None)
        for key in ("create", "read"):
            ok = base is not None and f"{key}_s" in row
            row[f"{key}_ratio"] = row[f"{key}_s"] / base[f"{key}_s"] if ok else None
    return rows


def _find(rows: list[dict[str, Any]], engine: str, names: str, count: int) -> dict[str, Any]:
    for row in rows:
        if (row["engine"], row["names"], row["count"]) == (engine, names, count):
            return row
    return {}


def _why(row: dict[str, Any]) -> str:
    if not row:
        return "not run"
    if row.get("error"):
        return row["error"]
    if row.get("errors"):
        return row["errors"][-1].strip().splitlines()[-1][:200]
    return "no probe of this store or of its 10-run store succeeded"


def _goal(name: str, row: dict[str, Any], base: dict[str, Any], key: str,
          limit: float) -> Goal:
    """MET / NOT MET / NOT MEASURED for one (engine, names, size) against its 10-run store."""
    ratio = row.get(f"{key}_ratio") if row else None
    if ratio is None:
        return Goal(name, "NOT MEASURED", _why(row if row else {}))
    at = row["runs"]
    detail = (f"{row[f'{key}_s'] * 1000:.1f} ms at {at:,} runs vs "
              f"{base[f'{key}_s'] * 1000:.1f} ms at {base['runs']:,} = {ratio:.2f}x "
              f"(limit {limit}x; median of {row['probes']} probe(s))")
    if row["complete"]:
        return Goal(name, "MET" if ratio <= limit else "NOT MET", detail)
    resume = ("the next run resumes it" if row["engine"] == "sqlite"
              else "raise it, or pass --keep and run again to resume")
    why = (f"a run failed: {row['failure']}" if row.get("failure")
           else f"--populate-budget; {resume}")
    short = f"; populating stopped at {at:,} of {row['count']:,} runs ({why})"
    if ratio > limit:  # over the limit already with fewer runs: more cannot be faster
        return Goal(name, "NOT MET", detail + short)
    return Goal(name, "NOT MEASURED", detail + short)


ENGINE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def goals(rows: list[dict[str, Any]], engines: list[str], quick: bool,
          big: bool) -> list[Goal]:
    """The three store-size rows of the issue's table, per engine, in the issue's order."""
    target = QUICK if quick else FULL
    vs = (f"{QUICK:,} runs vs {SMALL} (--quick; the goal is at {FULL:,})" if quick
          else f"{FULL:,} runs vs {SMALL}")
    out: list[Goal] = []
    for engine in engines:
        label, base = ENGINE_NAMES[engine], _find(rows, engine, "same", SMALL)
        out.append(_goal(f"create a run in a store of {vs}, same layouts, {label}: <= 1.5x",
                         _find(rows, engine, "same", target), base, "create",
                         CREATE_LIMIT["same"]))
        name = f"create a run in a store of {BIG:,} runs vs {SMALL}, same layouts, {label}: <= 1.5x"
        if big and not quick:
            out.append(_goal(name, _find(rows, engine, "same", BIG), base, "create",
                             CREATE_LIMIT["same"]))
        else:
            out.append(Goal(name, "NOT MEASURED", "opt-in: pass --big (populating 100,000 runs "
                                                  "takes long; see benchmarks/README.md)"))
    for engine in engines:
        out.append(_goal(f"create a run in a store of {vs}, parameter names of each run's own, "
                         f"{ENGINE_NAMES[engine]}: <= 3x", _find(rows, engine, "own", target),
                         _find(rows, engine, "own", SMALL), "create", CREATE_LIMIT["own"]))
    for engine in engines:
        out.append(_goal(f"connect() + read one run in a new process, store of {vs}, "
                         f"{ENGINE_NAMES[engine]}: <= 1.5x", _find(rows, engine, "same", target),
                         _find(rows, engine, "same", SMALL), "read", READ_LIMIT))
    return out
