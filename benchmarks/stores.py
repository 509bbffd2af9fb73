"""Populated stores for the store-size cases: filled once through the public API, reused.

A populated store holds N small completed runs (``scaling_worker populate``).
It is keyed by (engine, N, names mode, qdataset source), where the source key
is a hash of qdataset's and the migrations' ``.py`` files (what the git
revision pins, uncommitted edits included), shown with the git revision:

* SQLite: ``<workdir>/stores/sqlite-<N>-<names>-<key>.db`` with a JSON
  manifest beside it, kept across benchmark runs; a probe writes to a copy.
* PostgreSQL: schema ``qdbench_pop_<N>_<names>_<key>``, kept until the end
  of the benchmark run and then dropped (``--keep`` keeps it, and a later run
  with the same key reuses it); probes write into it.

Populating stops after ``budget_s`` seconds per store and per benchmark run;
the store then holds fewer runs, and the next run resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import pg
from benchmarks.runner import ROOT, _last_marker_json, _tail, remove_db


def source_key(root: Path = ROOT) -> tuple[str, str]:
    """(key, label): a hash of qdataset's sources and migrations, and their git revision."""
    digest = hashlib.sha1(usedforsecurity=False)
    for base in ("qdataset", "migrations"):
        for path in sorted((root / base).rglob("*.py")):
            if "_migrations" in path.parts:  # a copy of migrations/ in some layouts
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    key = digest.hexdigest()[:10]
    try:
        rev = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "qdataset", "migrations"],
            cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "qdataset", "migrations"],
            cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev, dirty = "", ""
    label = f"git {rev}{' + uncommitted changes' if dirty else ''}" if rev else "no git"
    return key, label


_STDERR_LOCK = threading.Lock()


def _forward(fd: int) -> bytes:
    """Copy a child's stderr (its progress bar) to ours in whole updates; the last 8 kB."""
    tail, pending = b"", b""
    while chunk := os.read(fd, 4096):
        tail = (tail + chunk)[-8192:]
        pending += chunk
        cut = max(pending.rfind(b"\r"), pending.rfind(b"\n")) + 1
        if cut:
            with _STDERR_LOCK:
                sys.stderr.buffer.write(pending[:cut])
                sys.stderr.flush()
            pending = pending[cut:]
    if pending:
        with _STDERR_LOCK:
            sys.stderr.buffer.write(pending)
            sys.stderr.flush()
    return tail


@dataclass
class Populated:
    """One populated store and how it came to be."""

    engine: str  # "sqlite" or "postgresql"
    count: int  # runs asked for
    names: str  # "same" or "own"
    url: str  # SQLite URL of the cached file, or the schema's PostgreSQL URL
    runs: int = 0  # runs it holds
    ids: dict[str, str] = field(default_factory=dict)  # first / middle / last
    populate_s: float = 0.0  # populating time, all sessions together
    added_now: int = 0  # runs this benchmark run added
    now_s: float = 0.0  # populating time in this benchmark run
    error: str | None = None  # the populate worker failed: nothing to probe
    failure: str | None = None  # populating stopped at a run that failed; the rest is usable

    @property
    def complete(self) -> bool:
        return self.error is None and self.runs >= self.count

    def describe(self) -> str:
        """One line: how full, and whether it was reused."""
        if self.error:
            return f"{self.engine} {self.count:,} ({self.names} names): ERROR {self.error}"
        how = (f"reused from the cache ({self.populate_s:.0f} s to populate originally)"
               if self.added_now == 0 else
               f"populated {self.added_now:,} runs in {self.now_s:.0f} s "
               f"({self.populate_s:.0f} s in all)")
        short = "" if self.complete else f", SHORT: {self.runs:,} of {self.count:,} runs"
        failed = f"; populating FAILED at {self.failure}" if self.failure else ""
        return f"{self.engine} {self.count:,} runs ({self.names} names): {how}{short}{failed}"


class StoreCache:
    """Finds or builds populated stores; hands out URLs for probes; cleans up."""

    def __init__(self, workdir: Path, pg_url: str, budget_s: float, keep: bool) -> None:
        self.dir = workdir / "stores"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pg_url = pg_url
        self.budget_s = budget_s
        self.keep = keep
        self.key, self.label = source_key()
        self.stores: list[Populated] = []
        self._copies = 0

    def _manifest(self, engine: str, count: int, names: str) -> Path:
        return self.dir / f"{engine}-{count}-{names}-{self.key}.json"

    def get_all(self, wanted: list[tuple[str, int, str]]) -> list[Populated]:
        """The stores (engine, count, names), filled or resumed as needed, a few at a time.

        Populating is not timed, so stores are filled in parallel (as many at
        once as there are CPUs), each worker with its own progress bar.
        """
        workers = max(1, min(len(wanted), os.cpu_count() or 2))
        slots = list(range(workers))  # progress-bar lines
        lock = threading.Lock()

        def one(spec: tuple[str, int, str]) -> Populated:
            with lock:
                slot = slots.pop(0)
            try:
                return self.get(*spec, position=slot if sys.stderr.isatty() else 0)
            finally:
                with lock:
                    slots.append(slot)

        order = sorted(range(len(wanted)), key=lambda i: -wanted[i][1])  # biggest first
        with ThreadPoolExecutor(workers) as pool:
            done = dict(zip(order, pool.map(one, [wanted[i] for i in order]), strict=True))
        return [done[i] for i in range(len(wanted))]

    def get(self, engine: str, count: int, names: str, position: int = 0) -> Populated:
        """The store, filled (or resumed) now if it needs to be."""
        manifest = self._manifest(engine, count, names)
        old = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}
        if engine == "sqlite":
            path = self.dir / f"sqlite-{count}-{names}-{self.key}.db"
            url = f"sqlite:///{path}"
            if not path.exists():
                old = {}
        else:
            schema = f"qdbench_pop_{count}_{names}_{self.key}"
            url, existed = pg.named_schema(self.pg_url, schema)
            if not existed:
                old = {}
        store = Populated(engine, count, names, url, populate_s=old.get("populate_s", 0.0))
        self.stores.append(store)
        if old.get("runs", 0) >= count and old.get("ids", {}).get("middle"):
            store.runs, store.ids = old["runs"], old["ids"]  # complete: no worker needed
            return store
        result = self._populate(store, position)
        if "error" in result:
            store.error = result["error"].strip().splitlines()[-1][:200]
            return store
        store.runs, store.ids = result["runs"], result["ids"]
        store.failure = result.get("failure")
        store.added_now, store.now_s = result["added"], result["seconds"]
        store.populate_s += result["seconds"] if result["added"] else 0.0
        manifest.write_text(json.dumps({
            "engine": engine, "count": count, "names": names, "url": url,
            "runs": store.runs, "ids": store.ids, "populate_s": store.populate_s,
            "source_key": self.key, "source": self.label}, indent=1) + "\n", encoding="utf-8")
        return store

    def _populate(self, store: Populated, position: int) -> dict[str, Any]:
        """The populate worker, its progress bar passed on to our stderr; its marker JSON."""
        argv = [sys.executable, "-m", "benchmarks.scaling_worker", "populate", store.url,
                str(store.count), store.names, "--budget", str(self.budget_s),
                "--position", str(position)]
        try:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        assert proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        tail = _forward(proc.stderr.fileno())
        proc.wait()
        reader.join()
        stdout = b"".join(out).decode(errors="replace")
        data = _last_marker_json(stdout) if proc.returncode == 0 else None
        if data is None:
            lines = tail.decode(errors="replace").replace("\r", "\n").splitlines()
            text = "\n".join(line for line in lines if "run/s]" not in line)  # not the bar
            return {"error": f"populate exit {proc.returncode}: {_tail(text or stdout)}"}
        return data

    def probe_url(self, store: Populated) -> str:
        """Where a probe may write: a fresh copy of a SQLite store, the schema itself on PG."""
        if store.engine != "sqlite":
            return store.url
        self._copies += 1
        source = Path(store.url[len("sqlite:///"):])
        copy = self.dir.parent / f"probe-{self._copies}.db"
        remove_db(copy)
        shutil.copyfile(source, copy)
        wal = Path(str(source) + "-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(str(copy) + "-wal"))
        return f"sqlite:///{copy}"

    def release(self, url: str) -> None:
        """Delete a probe's copy (PostgreSQL: nothing, the schema is dropped at the end)."""
        if not pg.is_pg(url):
            remove_db(Path(url[len("sqlite:///"):]))

    def finish(self) -> list[str]:
        """Drop the PostgreSQL schemas (unless kept); notes on what stays where."""
        notes = [f"populated SQLite stores cached in {self.dir} (key {self.key}, "
                 f"qdataset {self.label}); delete the folder to rebuild them"]
        for store in self.stores:
            if store.engine == "sqlite":
                continue
            if self.keep:
                notes.append(f"PostgreSQL schema kept: {pg.schema_of(store.url)} "
                             "(a later run with --keep reuses it)")
            elif pg.drop_schema(store.url):
                self._manifest(store.engine, store.count, store.names).unlink(missing_ok=True)
            else:
                notes.append(f"PostgreSQL schema {pg.schema_of(store.url)} could not be "
                             "dropped; drop it by hand")
        return notes
