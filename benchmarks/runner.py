"""Runs the workers: each (case, implementation) in a fresh process, interleaved, repeated."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import pg
from benchmarks.common import file_size_mb
from benchmarks.worker import MARKER, WRITE_CASES

ROOT = Path(__file__).resolve().parent.parent  # the project root: workers run from here
DEFAULT_WORKDIR = ROOT / "benchmarks" / ".work"  # measurement files (deleted) + stores/ (kept)
CASES = ("A", "B", "C", "D")
PARTS = ("SCALE", "LIVE")  # store-size cases and the live writer (issue 12)
FULL_ROWS = {"A": 20_000, "B": 1_000_000, "C": 1_000, "D": 1_000_000}
TRACE_POINTS = 1000
WORKER_TIMEOUT_S = 1800
QCODES_SKIPPED = "QCoDeS skipped: install the bench extra (needs Python 3.12 for qcodes 0.59+)"
PG_IMPL = "qdataset-pg"
RAW_LAYOUT = "raw-layout"  # raw sqlite3 into qdataset's table layout (cases_raw_layout.py)
PG_CASES = ("A", "B", "D")  # row-by-row, bulk write, bulk read (issue 7)

IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {module}
seconds = time.perf_counter() - t0
if getattr(sys.modules["{module}"], "__file__", None) is None:
    raise ImportError("{module} is only a namespace package here (no __init__.py)")
heavy = ("qiskit", "matplotlib", "pandas", "scipy", "qcodes")
loaded = sorted(h for h in heavy if h in sys.modules and h != "{module}")
result = {{"seconds": seconds, "loaded": loaded, "modules": len(sys.modules)}}
print("{marker}" + json.dumps(result))
"""


@dataclass
class Config:
    """What to run, from the command line."""

    repeats: int = 3
    quick: bool = False
    cases: tuple[str, ...] = CASES
    qcodes_python: str | None = None
    workdir: str | None = None
    keep: bool = False
    import_repeats: int = 5
    postgres: bool = True
    pg_url: str = pg.DEFAULT_PG_URL
    parts: tuple[str, ...] = PARTS
    big: bool = False  # also a store of 100,000 runs
    probes: int = 7  # fresh-process probes per store size
    populate_budget: float = 900.0  # seconds of populating per store and benchmark run
    live_repeats: int | None = None  # None: live.py's default (11; quick: 1)

    def rows(self, case: str) -> int:
        """Rows of a case: the issue's sizes, or a tenth of them with --quick."""
        return FULL_ROWS[case] // 10 if self.quick else FULL_ROWS[case]


@dataclass
class Impl:
    """An implementation that can be benchmarked, and the interpreter that runs it."""

    name: str
    python: str
    cases: tuple[str, ...] = CASES


@dataclass
class Results:
    """Everything a benchmark run found; saved as JSON."""

    config: dict[str, Any]
    impls: dict[str, str] = field(default_factory=dict)  # name -> interpreter
    notes: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    imports: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)
    scaling: dict[str, Any] = field(default_factory=dict)  # store-size probes (scaling.py)
    live: dict[str, Any] | None = None  # the live writer (live_part.py)
    load: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)


def _last_marker_json(stdout: str) -> dict[str, Any] | None:
    """The JSON after the last ``BENCH_RESULT`` marker of a child's output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return None


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_python(python: str, argv: list[str], timeout: float = WORKER_TIMEOUT_S) -> dict[str, Any]:
    """Run ``python argv...`` from the project root; its marker JSON, or {"error": ...}."""
    try:
        proc = subprocess.run(
            [python, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    data = _last_marker_json(proc.stdout) if proc.returncode == 0 else None
    if data is None:
        return {"error": f"exit {proc.returncode}: {_tail(proc.stderr or proc.stdout)}"}
    return data


def probe_import(python: str, module: str) -> dict[str, Any]:
    """Import ``module`` in a fresh interpreter and time it."""
    code = IMPORT_PROBE.format(module=module, marker=MARKER)
    return run_python(python, ["-c", code], timeout=120)


def available_impls(cfg: Config, results: Results) -> list[Impl]:
    """raw always; qdataset and QCoDeS when they import, with a note when not."""
    impls = [Impl("raw", sys.executable), Impl(RAW_LAYOUT, sys.executable)]
    probe = probe_import(sys.executable, "qdataset")
    if "error" in probe:
        results.notes.append(f"qdataset skipped: `import qdataset` failed: {probe['error']}")
    else:
        impls.append(Impl("qdataset", sys.executable))
        add_postgres(cfg, impls, results)
    qpython = cfg.qcodes_python or sys.executable
    probe = probe_import(qpython, "qcodes")
    if "error" in probe:
        hint = "" if cfg.qcodes_python else " or pass --python PATH of an interpreter with qcodes"
        results.notes.append(f"{QCODES_SKIPPED}{hint} (import qcodes with {qpython}: "
                             f"{probe['error'].splitlines()[-1]})")
    else:
        impls.append(Impl("qcodes", qpython))
    results.impls = {i.name: i.python for i in impls}
    return impls


def add_postgres(cfg: Config, impls: list[Impl], results: Results) -> None:
    """qdataset on PostgreSQL (cases A, B, D) when a server answers, else a note why not."""
    if not cfg.postgres:
        results.notes.append(f"{PG_IMPL} skipped: --no-postgres")
        return
    problem = pg.check_server(cfg.pg_url)
    if problem is not None:
        results.notes.append(
            f"{PG_IMPL} skipped: no PostgreSQL server answers at {cfg.pg_url} ({problem}); "
            "start one, point --pg-url (or QDATASET_BENCH_PG_URL) at it, "
            "or pass --no-postgres")
        return
    impls.append(Impl(PG_IMPL, sys.executable, PG_CASES))


class Targets:
    """Where measurements write: a fresh SQLite file, or a fresh PostgreSQL schema (its URL)."""

    def __init__(self, workdir: Path, pg_url: str) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.schemas: set[str] = set()  # URLs of PostgreSQL schemas not dropped yet

    def make(self, impl: Impl, label: str) -> str:
        """An empty target for one measurement."""
        if impl.name == PG_IMPL:
            _, url = pg.create_schema(self.pg_url, label)
            self.schemas.add(url)
            return url
        path = self.workdir / f"{label}.db"
        remove_db(path)
        return str(path)

    def remove(self, target: str) -> None:
        """Delete a file (with its companions) or drop a schema."""
        if pg.is_pg(target):
            pg.drop_schema(target)
            self.schemas.discard(target)
        else:
            remove_db(Path(target))

    def drop_all(self) -> None:
        """Drop every schema still there."""
        for url in list(self.schemas):
            self.remove(url)


def target_size_mb(target: str) -> float | None:
    """Database size: the file (+WAL/journal), or the schema's tables, indexes and TOAST."""
    return pg.schema_size_mb(target) if pg.is_pg(target) else file_size_mb(target)


def run_worker(
    impl: Impl, case: str, target: str, rows: int, run_id: str | None = None
) -> dict[str, Any]:
    """One measurement in a fresh process; the size is read after the child exited."""
    argv = ["-m", "benchmarks.worker", impl.name, case, target, str(rows),
            "--points", str(TRACE_POINTS)]
    if run_id is not None:
        argv += ["--run-id", run_id]
    result = run_python(impl.python, argv)
    if "error" not in result and case in WRITE_CASES:
        result["file_mb"] = target_size_mb(target)
    result.update(case=case, impl=impl.name, rows=rows)
    return result


def remove_db(path: Path) -> None:
    """Delete a database file and its WAL/SHM/journal companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _say(text: str) -> None:
    print(text, flush=True)


def _describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[-1][:150]
    return f"{result['seconds']:.3f} s, peak RSS {result['peak_rss_mb']:.0f} MB"


def run_case(case: str, impls: list[Impl], cfg: Config, targets: Targets,
             prepared: dict[str, tuple[str, str | None]], results: Results) -> None:
    """Repeat one case, interleaving the implementations within each repetition."""
    rows = cfg.rows(case)
    for rep in range(cfg.repeats):
        for impl in impls:
            if case not in impl.cases:
                continue
            run_id = None
            if case == "D":
                if impl.name not in prepared:
                    continue
                target, run_id = prepared[impl.name]
            else:
                target = targets.make(impl, f"{case}-{impl.name}-{rep}")
            result = run_worker(impl, case, target, rows, run_id)
            result["repeat"] = rep
            results.runs.append(result)
            _say(f"  {case} {impl.name:11s} #{rep + 1}: {_describe(result)}")
            if case == "B" and "error" not in result:
                old = prepared.get(impl.name)
                prepared[impl.name] = (target, result.get("run_id"))
                if old is not None and old[0] != target:
                    targets.remove(old[0])
            elif case != "D":
                targets.remove(target)


def prepare_for_d(impls: list[Impl], cfg: Config, targets: Targets,
                  prepared: dict[str, tuple[str, str | None]], results: Results) -> None:
    """Case D reads case B's data: write it (untimed) for implementations that lack it."""
    for impl in impls:
        if impl.name in prepared or "D" not in impl.cases:
            continue
        target = targets.make(impl, f"D-source-{impl.name}")
        result = run_worker(impl, "B", target, cfg.rows("D"))
        if "error" in result:
            results.notes.append(
                f"case D for {impl.name}: writing its input failed: {result['error']}"
            )
            targets.remove(target)
            continue
        prepared[impl.name] = (target, result.get("run_id"))


def measure_imports(impls: list[Impl], cfg: Config, results: Results) -> None:
    """Time ``import qdataset`` (and ``import qcodes``) in fresh interpreters."""
    modules = {"qdataset": "qdataset", "qcodes": "qcodes"}
    for impl in impls:
        module = modules.get(impl.name)
        if module is None:
            continue
        probes = [probe_import(impl.python, module) for _ in range(cfg.import_repeats)]
        good = [p for p in probes if "error" not in p]
        if not good:
            results.imports[module] = {"error": probes[0]["error"]}
            continue
        loaded = sorted({m for p in good for m in p["loaded"]})
        results.imports[module] = {
            "median_ms": statistics.median(p["seconds"] for p in good) * 1000,
            "all_ms": [p["seconds"] * 1000 for p in good],
            "loaded": loaded,
            "python": impl.python,
        }
        _say(f"  import {module}: {results.imports[module]['median_ms']:.0f} ms, also loaded: "
             f"{', '.join(loaded) or 'none of qiskit/matplotlib/pandas/scipy'}")


def _load(results: Results, when: str) -> None:
    """Record the load average (1, 5, 15 min): the machine is shared."""
    try:
        results.load.append((when, os.getloadavg()))
    except OSError:
        pass


def _clean_workdir(workdir: Path) -> None:
    """Delete the measurement files; the cache of populated stores stays."""
    for child in workdir.iterdir():
        if child.name == "stores":
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def measure_store_size(cfg: Config, impls: list[Impl], workdir: Path,
                       results: Results) -> list[Any]:
    """The store-size cases on every engine there is; their goals."""
    from benchmarks import scaling
    from benchmarks.stores import StoreCache

    engines = ["sqlite"] + (["postgresql"] if any(i.name == PG_IMPL for i in impls) else [])
    cache = StoreCache(workdir, cfg.pg_url, cfg.populate_budget, cfg.keep)
    _say(f"store size ({', '.join(engines)}; stores keyed by qdataset source {cache.key}, "
         f"{cache.label}; {cfg.probes} probe(s) per size):")
    try:
        data = scaling.measure(engines, cache, cfg.probes, cfg.quick, cfg.big)
    finally:
        results.notes.extend(cache.finish())
    data["rows"] = scaling.summarize(data)
    results.scaling = data
    return scaling.goals(data["rows"], engines, cfg.quick, cfg.big)


def measure_live(cfg: Config, results: Results) -> list[Any]:
    """The live writer with 5 subscribers vs none; its goals."""
    from benchmarks import live_part

    lcfg = live_part.config(cfg.quick, cfg.live_repeats, cfg.postgres, cfg.pg_url)
    _say(f"live: {lcfg.rows:,} rows row by row, 0 vs 5 subscribers, {lcfg.repeats} repeat(s):")
    results.live = live_part.measure(lcfg)
    results.notes.extend(results.live["notes"])
    return live_part.goals(results.live, results.live["backends"], cfg.quick)


def run_all(cfg: Config) -> Results:
    """The whole benchmark: availability, imports, cases A-D, store size, live, the summary."""
    from benchmarks.summary import evaluate_goals, summarize

    results = Results(config={**cfg.__dict__, "rows": {c: cfg.rows(c) for c in CASES},
                              "trace_points": TRACE_POINTS, "python": sys.executable})
    _load(results, "start")
    workdir = Path(cfg.workdir) if cfg.workdir else DEFAULT_WORKDIR
    workdir.mkdir(parents=True, exist_ok=True)
    targets = Targets(workdir, cfg.pg_url)
    scale_goals: list[Any] | None = None
    live_goals: list[Any] | None = None
    try:
        impls = available_impls(cfg, results)
        for note in results.notes:
            _say("note: " + note)
        _say("import times (fresh interpreter):")
        measure_imports(impls, cfg, results)
        prepared: dict[str, tuple[str, str | None]] = {}
        for case in cfg.cases:
            _say(f"case {case} ({cfg.rows(case):,} rows, {cfg.repeats} repeat(s)):")
            if case == "D":
                prepare_for_d(impls, cfg, targets, prepared, results)
            run_case(case, impls, cfg, targets, prepared, results)
        if "SCALE" in cfg.parts and any(i.name == "qdataset" for i in impls):
            scale_goals = measure_store_size(cfg, impls, workdir, results)
        if "LIVE" in cfg.parts and any(i.name == "qdataset" for i in impls):
            live_goals = measure_live(cfg, results)
    finally:
        if not cfg.keep:
            _clean_workdir(workdir)
            targets.drop_all()
        else:
            results.notes.append(f"database files kept in {workdir}")
            for url in sorted(targets.schemas):
                results.notes.append(f"PostgreSQL schema kept: {pg.schema_of(url)}")
    _load(results, "end")
    results.summary = summarize(results.runs)
    if scale_goals is None:
        from benchmarks.scaling import goals as scaling_goals

        engines = ["sqlite"] + (["postgresql"] if PG_IMPL in results.impls else [])
        scale_goals = scaling_goals([], engines, cfg.quick, cfg.big)
    if live_goals is None:
        from benchmarks.live_part import goals as live_part_goals

        live_goals = live_part_goals(None, ["sqlite"] + (["postgresql"] if PG_IMPL in
                                                         results.impls else []), cfg.quick)
    results.goals = evaluate_goals(results.summary, results.imports, scale_goals, live_goals,
                                   pg_engine=PG_IMPL in results.impls)
    return results


def save_json(results: Results, path: str) -> None:
    """Write the results as JSON (creating the folder if needed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results.__dict__, indent=2, default=str) + "\n", encoding="utf-8")
