"""One writer per run, resume and rescue, with real processes (issue 13, items 1-3).

Writers are separate Python processes (tests/writer_child.py) that write rows
``k == v == index`` tagged with ``src`` (which writer), so the stored data says
who wrote each row and where.  Stored rows are read back with plain SQL, not
through qdataset, so a bug in the reading path cannot hide one in writing.

Numbers (rows lost to SIGKILL, duplicates) are printed; see them with ``-s``:

    .venv/bin/python -m pytest tests/test_writer_processes.py -m slow -s
    QDATASET_RESUME_TRIALS=100 .venv/bin/python -m pytest \
        tests/test_writer_processes.py -k resume_after_sigkill -s
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import qdataset

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

CHILD = Path(__file__).with_name("writer_child.py")

#: resume-after-SIGKILL trials per engine (both engines take about 1 s per trial here)
TRIALS = int(os.environ.get("QDATASET_RESUME_TRIALS", "20"))

WAIT = 60.0  # seconds any single wait may take before the test fails


# -- child processes ------------------------------------------------------------------------

class Child:
    """A writer_child.py process whose JSON events and stderr are collected by threads."""

    def __init__(self, *args: object, cwd: Path | None = None) -> None:
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen([sys.executable, str(CHILD), *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd)
        self.events: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "text", "line": line})
        self.events.put({"event": "eof"})

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def event(self, name: str, timeout: float = WAIT) -> dict:
        """The next event called ``name`` (others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {name!r} event from {self.args[0]} within "
                                     f"{timeout} s; stderr:\n{self.stderr}") from None
            if event["event"] == name:
                return event
            if event["event"] == "eof":
                self.proc.wait(timeout=WAIT)
                for thread in self._threads:
                    thread.join(timeout=WAIT)
                raise AssertionError(f"{self.args[0]} ended (exit {self.proc.returncode}) "
                                     f"before {name!r}; stderr:\n{self.stderr}")

    def finish(self) -> int:
        """Wait for the process to end; its exit code (stderr fully read)."""
        code = self.proc.wait(timeout=WAIT)
        for thread in self._threads:
            thread.join(timeout=WAIT)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)  # reaped: its pid is dead for os.kill(pid, 0)
        for thread in self._threads:
            thread.join(timeout=WAIT)


def new_counter(directory: Path, name: str = "counter") -> Path:
    path = directory / name
    path.write_bytes(b"\0" * 8)
    return path


def read_counter(path: Path) -> int:
    return struct.unpack("<q", path.read_bytes()[:8])[0]


def wait_for(condition, what: str, timeout: float = WAIT, proc: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.proc.poll() is not None:
            proc.finish()
            raise AssertionError(f"{proc.args[0]} exited ({proc.proc.returncode}) while "
                                 f"waiting for {what}; stderr:\n{proc.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``qdataset`` command."""
    script = Path(sys.executable).with_name("qdataset")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "qdataset.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          timeout=WAIT, cwd=cwd)


# -- the database, read and changed with plain SQL -------------------------------------------

@dataclass
class Stored:
    length: int
    completed: bool
    writer_token: str | None
    params: list[str]
    #: (index, k, v, src) in index order
    rows: list[tuple[int, float, float, float]]

    @property
    def indices(self) -> list[int]:
        return [r[0] for r in self.rows]


def raw_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def stored(url: str, run_id: str) -> Stored:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            pk, table, length, completed_at, token = conn.execute(sa.text(
                "SELECT pk, results_table, length, completed_at, writer_token FROM runs "
                "WHERE run_id = :r"), {"r": run_id}).one()
            params = conn.execute(sa.text(
                "SELECT name, column_name FROM run_params WHERE run_pk = :pk "
                "ORDER BY position"), {"pk": pk}).all()
            column = dict(params)
            rows = conn.execute(sa.text(
                f'SELECT "_qd_index", "{column["k"]}", "{column["v"]}", "{column["src"]}" '
                f'FROM "{table}" WHERE "_qd_run" = :pk ORDER BY "_qd_index"'),
                {"pk": pk}).all()
    finally:
        engine.dispose()
    return Stored(int(length), completed_at is not None, token, [p[0] for p in params],
                  [(int(i), float(k), float(v), float(s)) for i, k, v, s in rows])


def stored_length(url: str, run_id: str) -> int:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT length FROM runs WHERE run_id = :r"),
                                    {"r": run_id}).scalar_one())
    finally:
        engine.dispose()


def set_writer(url: str, run_id: str, **values: object) -> None:
    """UPDATE the run's writer_* columns as another host's process would have left them."""
    engine = raw_engine(url)
    try:
        with engine.begin() as conn:
            assignments = ", ".join(f"writer_{name} = :{name}" for name in values)
            done = conn.execute(sa.text(f"UPDATE runs SET {assignments} WHERE run_id = :r"),
                                {**values, "r": run_id}).rowcount
            assert done == 1
    finally:
        engine.dispose()


def check_pattern(rows: list[tuple[int, float, float, float]], start: int = 0) -> None:
    """Indices contiguous from ``start`` and k == v == index on every row."""
    assert [r[0] for r in rows] == list(range(start, start + len(rows))), "gaps or duplicates"
    wrong = [r for r in rows if not r[1] == r[2] == r[0]]
    assert not wrong, f"{len(wrong)} rows with k/v != index, first {wrong[:3]}"


def duplicates(rows: list[tuple[int, float, float, float]]) -> int:
    """Rows whose payload also appears at another index, or sits at the wrong one."""
    values = [r[2] for r in rows]
    return (len(values) - len(set(values))) + sum(1 for r in rows if r[2] != r[0])


def rescue_path(message: str) -> Path:
    found = re.search(r"rescue file '([^']+)'", message)
    assert found, f"no rescue file named in: {message}"
    return Path(found.group(1))


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[writer processes] {text}", flush=True)


def engine_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


# -- 1. a second process is refused; the writer keeps every row ------------------------------

@pytest.mark.slow
def test_second_process_is_refused_and_the_writer_keeps_every_row(store_url, tmp_path, capsys):
    counter, stop = new_counter(tmp_path), tmp_path / "stop"
    writer = Child("write", store_url, counter, stop, 1, "", 5, "complete")
    try:
        started = writer.event("started")
        run_id, pid = started["id"], started["pid"]
        wait_for(lambda: stored_length(store_url, run_id) >= 500, "flushed rows", proc=writer)
        intruder = Child("intrude", store_url, run_id)
        tried = intruder.event("intruded")
        assert intruder.finish() == 0, intruder.stderr
        during = read_counter(counter)
        assert writer.proc.poll() is None, "the writer must still be writing"
        stop.touch()
        done = writer.event("done")
        assert writer.finish() == 0, writer.stderr
    finally:
        writer.kill()

    for name, error in tried["results"].items():
        assert error is not None, f"{name} on a view of a live writer's run succeeded"
        assert error["type"] == "WriterActiveError", (name, error)
        assert f"pid {pid}" in error["message"], (name, error["message"])
        assert started["host"] in error["message"], (name, error["message"])
    assert tried["completed"] is False

    run = stored(store_url, run_id)
    assert run.completed
    assert run.params == ["k", "v", "src"]  # add_parameter(s) stored nothing
    assert done["length"] == done["accepted"] >= during
    assert run.length == len(run.rows) == done["accepted"]
    check_pattern(run.rows)  # every accepted row exactly once, nothing from the intruder
    assert {r[3] for r in run.rows} == {1.0}
    report(capsys, f"{engine_of(store_url)}: second process refused on "
                   f"{len(tried['results'])} calls while the writer wrote; writer stored "
                   f"{run.length}/{done['accepted']} accepted rows, 0 duplicates, 0 gaps")


# -- 2. resume after SIGKILL --------------------------------------------------------------

@pytest.mark.slow
def test_resume_after_sigkill(store_url, store, tmp_path, capsys):
    seed = int(os.environ.get("QDATASET_RESUME_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    lost: list[int] = []
    lost_ms: list[float] = []  # the same, as milliseconds of the writer's output
    dups = gaps = 0
    resumed_rows = 50
    for trial in range(TRIALS):
        counter = new_counter(tmp_path, f"counter{trial}")
        writer = Child("write", store_url, counter, tmp_path / "never", 1, "", 5, "-")
        try:
            run_id = writer.event("started")["id"]
            wait_for(lambda c=counter: read_counter(c) > 0, "a first accepted row",
                     proc=writer)
            first_row = time.monotonic()
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment in the stream
        finally:
            writer.kill()
        writing = time.monotonic() - first_row
        assert writer.proc.returncode == -signal.SIGKILL, writer.stderr
        accepted = read_counter(counter)
        before = stored(store_url, run_id)
        assert not before.completed
        assert before.length == len(before.rows)
        check_pattern(before.rows)
        # The counter lags add_result by at most one row.
        assert len(before.rows) <= accepted + 1, (len(before.rows), accepted)
        lost.append(max(0, accepted - len(before.rows)))
        lost_ms.append(1000 * lost[-1] * writing / max(accepted, 1))  # at its mean rate

        ds = store.resume_dataset(run_id)  # at once: the writer's pid is dead on this host
        n = len(before.rows)
        assert ds.length == n
        for j in range(n, n + resumed_rows):
            assert ds.add_result(k=float(j), v=float(j), src=2.0) == j
        ds.mark_completed()

        after = stored(store_url, run_id)
        dups += duplicates(after.rows)
        gaps += (after.rows[-1][0] + 1 - len(after.rows)) if after.rows else 0
        assert after.completed
        assert after.length == len(after.rows) == n + resumed_rows
        check_pattern(after.rows)
        assert [r[3] for r in after.rows] == [1.0] * n + [2.0] * resumed_rows
    report(capsys, f"{engine_of(store_url)}: resume after SIGKILL: {TRIALS} trials "
                   f"(seed {seed}), rows lost (accepted, not yet flushed at the kill) "
                   f"max {max(lost)} mean {sum(lost) / len(lost):.1f} "
                   f"(~{max(lost_ms):.0f} ms / ~{sum(lost_ms) / len(lost_ms):.0f} ms of "
                   f"writing at the writer's mean rate; flush interval 0.1 s) "
                   f"(per trial {lost}), duplicates {dups}, gaps {gaps}")
    assert dups == 0 and gaps == 0


@pytest.mark.slow
def test_a_view_in_another_process_completes_a_killed_writers_run(store_url, tmp_path):
    counter = new_counter(tmp_path)
    writer = Child("write", store_url, counter, tmp_path / "never", 1, "", 5, "-")
    try:
        run_id = writer.event("started")["id"]
        wait_for(lambda: stored_length(store_url, run_id) >= 100, "flushed rows", proc=writer)
    finally:
        writer.kill()
    before = stored(store_url, run_id)
    completer = Child("complete", store_url, run_id)
    done = completer.event("completed")
    assert completer.finish() == 0, completer.stderr
    after = stored(store_url, run_id)
    assert done["completed"] is True and done["length"] == before.length
    assert after.completed and after.writer_token is None
    assert after.rows == before.rows
    check_pattern(after.rows)


# -- 3. a writer whose lease was taken over ---------------------------------------------------

@pytest.mark.slow
def test_lease_taken_over_old_writer_is_refused_and_its_rows_are_rescued(
        store_url, tmp_path, capsys):
    counter = new_counter(tmp_path)
    cwd = tmp_path / "cwd-a"
    cwd.mkdir()
    # A long lease_timeout: A renews only every 200 s, so it cannot undo the expiry below.
    a = Child("write", store_url, counter, tmp_path / "never", 1, "", 600, "-", cwd=cwd)
    try:
        started = a.event("started")
        run_id = started["id"]
        wait_for(lambda: stored_length(store_url, run_id) >= 300, "A's flushed rows", proc=a)
        # A's host goes silent: its lease expires as seen from here.
        set_writer(store_url, run_id, host="elsewhere", expires_at=time.time() - 60)
        b_store = qdataset.connect(store_url, flush_interval=0.05)
        try:
            b = b_store.resume_dataset(run_id)
            taken_at = b.length
            b_rows = 500
            for j in range(taken_at, taken_at + b_rows):
                assert b.add_result(k=float(j), v=float(j), src=2.0) == j
            b.flush()
            refused = a.event("refused")
            closed = a.event("closed")
            assert a.finish() == 0, a.stderr
        finally:
            b_store.close()  # releases B's lease, does not complete the run
    finally:
        a.kill()

    # A was told at its next flush, and every later call raised.
    assert refused["error"]["type"] == "WriterActiveError", refused
    assert refused["again"] is not None and refused["again"]["type"] == "WriterActiveError"
    accepted = refused["accepted"]
    assert refused["length_after"] == accepted  # the refused call accepted nothing
    assert refused["unwritten"] == accepted - taken_at
    if refused["unwritten"]:
        assert refused["unwritten_first"] == taken_at
        assert refused["unwritten_last"] == accepted - 1
    # close() saved A's rows to a rescue file and said where.
    assert closed["error"] is not None and closed["error"]["type"] == "FlushError", closed
    path = rescue_path(closed["error"]["message"])
    assert path.is_file()
    if engine_of(store_url) == "sqlite":
        assert path.parent == Path(store_url.removeprefix("sqlite:///")).parent
    else:
        assert path.parent == cwd.resolve()
    with qdataset.connect(path, create=False) as rescue:
        kept = rescue.read_dataset(run_id).get_data("k")[0].tolist()
    assert kept == [float(i) for i in range(taken_at, accepted)]

    # A never wrote into B's range: A's rows end where B took over, then B's.
    run = stored(store_url, run_id)
    assert not run.completed and run.writer_token is None
    assert run.length == len(run.rows) == taken_at + b_rows
    check_pattern(run.rows)
    assert [r[3] for r in run.rows] == [1.0] * taken_at + [2.0] * b_rows

    loaded = cli("rescue", path, "--url", store_url)
    assert loaded.returncode == 0, loaded.stderr
    assert f"{accepted - taken_at} results loaded from index {taken_at + b_rows}" in \
        loaded.stdout, loaded.stdout
    run = stored(store_url, run_id)
    assert run.length == len(run.rows) == taken_at + b_rows + (accepted - taken_at)
    assert [r[0] for r in run.rows] == list(range(run.length))
    tail = run.rows[taken_at + b_rows:]
    assert [(r[1], r[3]) for r in tail] == [(float(i), 1.0) for i in range(taken_at, accepted)]

    again = cli("rescue", path, "--url", store_url)
    assert again.returncode == 0, again.stderr
    assert "already loaded" in again.stdout, again.stdout
    assert stored(store_url, run_id).length == run.length
    report(capsys, f"{engine_of(store_url)}: lease takeover: A stored {taken_at}, B wrote "
                   f"{b_rows} after it, A accepted {accepted} and rescued "
                   f"{accepted - taken_at} (loaded after B's rows, once)")


# -- 4. full disk (SQLite: RLIMIT_FSIZE, and a real ENOSPC on a tiny tmpfs) -----------------

@contextlib.contextmanager
def tiny_filesystem(directory: Path, size: str = "32m"):
    """A tmpfs of ``size`` mounted at ``directory`` (root only); skips if impossible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root (the RLIMIT_FSIZE variant runs "
                    "without)")
    directory.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the "
                    "RLIMIT_FSIZE variant covers EFBIG")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["rlimit_fsize", "tmpfs_enospc"])
def test_full_disk_writer_is_told_keeps_its_rows_and_writes_them_later(how, tmp_path, capsys):
    if how == "rlimit_fsize":
        resource = pytest.importorskip("resource")
        if not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(signal, "SIGXFSZ"):
            pytest.skip("needs RLIMIT_FSIZE and SIGXFSZ")
        _full_disk(tmp_path / "full.db", "fsize", capsys)
    else:
        with tiny_filesystem(tmp_path / "disk") as disk:
            _full_disk(disk / "full.db", f"ballast:{disk / 'ballast'}", capsys)


def _full_disk(path: Path, how: str, capsys) -> None:
    writer = Child("full_disk", f"sqlite:///{path}", path, how)
    try:
        limited = writer.event("limited")
        full = writer.event("full", timeout=120)
        lifted = writer.event("lifted", timeout=120)
        code = writer.finish()
    finally:
        writer.kill()
    report(capsys, f"full disk ({how}, {limited['limit']} B): told after row "
                   f"{full['told_at']} by {full['warning_count']} WARNING record(s) "
                   f"{[w['message'][:90] for w in full['warnings'][:2]]} "
                   f"(causes {[w['exc'] for w in full['warnings'][:2]]}) and "
                   f"{len(full['raised'])} raised error(s) {full['raised'][:1]}; "
                   f"accepted {full['accepted']}, stored while full "
                   f"{full['stored_while_full']}, kept in memory {full['unwritten']}; after "
                   f"space came back: unwritten {lifted['unwritten_after']}, flush errors "
                   f"{lifted['flush_error_count']} {lifted['flush_errors'][:1]}")
    assert code == 0, writer.stderr
    assert full["told_at"] is not None, "the writer was never told the disk was full"
    for error in full["raised"]:
        assert error["qdataset_error"], error  # never a raw sqlite3/SQLAlchemy error
    accepted = full["accepted"]
    assert full["stored_while_full"] < accepted, "the full disk never stopped a write"
    assert full["stored_while_full"] + full["unwritten"] == accepted  # kept, none dropped
    assert lifted["unwritten_after"] == 0
    assert lifted["complete_error"] is None and lifted["close_error"] is None, lifted

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()
    run = stored(f"sqlite:///{path}", lifted["id"])
    assert run.completed
    assert run.length == len(run.rows) == accepted
    check_pattern(run.rows)
    with qdataset.connect(path, create=False) as store:
        trace = store.read_dataset(lifted["id"]).get_data("trace")[0]
    assert trace.shape == (accepted, 256)
    assert (trace == trace[:, :1]).all()
    assert trace[:, 0].tolist() == [float(i) for i in range(accepted)]


# -- 5. rescue at interpreter exit -----------------------------------------------------------

@pytest.mark.slow
def test_rows_unwritable_at_exit_go_to_a_rescue_file_that_loads_back(store_url, tmp_path):
    cwd, go = tmp_path / "cwd", tmp_path / "go"
    cwd.mkdir()
    first, more = 100, 150
    child = Child("exit_rescue", store_url, go, first, more, cwd=cwd)
    try:
        ready = child.event("ready")
        run_id = ready["id"]
        # Another host's process takes the run over before the child's last flush.
        set_writer(store_url, run_id, token="f" * 32, host="elsewhere", pid=1,
                   expires_at=time.time() + 600)
        go.touch()
        accepted = child.event("accepted")
        code = child.finish()
    finally:
        child.kill()
    assert code == 0, child.stderr
    assert accepted["length"] == first + more and accepted["unwritten"] == more
    assert "qdataset: at exit:" in child.stderr and "rescue file" in child.stderr, child.stderr
    path = rescue_path(child.stderr)
    assert path.is_file(), child.stderr
    if engine_of(store_url) == "postgresql":
        assert path.parent == cwd.resolve()
    run = stored(store_url, run_id)
    assert run.length == len(run.rows) == first
    check_pattern(run.rows)

    # While the other writer holds the run, loading is refused and adds nothing.
    refused = cli("rescue", path, "--url", store_url)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "elsewhere" in refused.stderr, refused.stderr
    assert stored(store_url, run_id).length == first

    set_writer(store_url, run_id, expires_at=time.time() - 60)  # that writer is gone
    loaded = cli("rescue", path, "--url", store_url)
    assert loaded.returncode == 0, loaded.stderr
    assert f"{more} results loaded from index {first}" in loaded.stdout, loaded.stdout
    run = stored(store_url, run_id)
    assert run.length == len(run.rows) == first + more
    check_pattern(run.rows)

    again = cli("rescue", path, "--url", store_url)
    assert again.returncode == 0, again.stderr
    assert "already loaded" in again.stdout
    assert stored(store_url, run_id).rows == run.rows


# -- 6. a takeover racing the old writer's last flush (PostgreSQL) ----------------------------

def _blocked_by(conn: sa.Connection, holder: int) -> set[int]:
    """Backends waiting, directly or through other waiters, on backend ``holder``."""
    waits = conn.execute(sa.text(
        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock'")).all()
    blocked, grew = set(), True
    while grew:
        grew = False
        for pid, blockers in waits:
            if pid not in blocked and ({holder} | blocked) & set(blockers):
                blocked.add(pid)
                grew = True
    return blocked


@pytest.mark.slow
def test_resume_racing_the_old_writers_flush_continues_at_the_stored_length(
        store_url, tmp_path):
    """The takeover of a run whose old writer (A, another host's lease expired) is in
    the middle of a flush.  Made deterministic with a row lock on the run's ``runs``
    row: A's flush queues on it first, then B's resume_dataset; then the lock is
    released, so A's flush commits just before B's takeover does.  B must continue
    at the length that is stored (A's flush included), and its rows must go in."""
    if engine_of(store_url) != "postgresql":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: no interleaving")
    counter = new_counter(tmp_path)
    a = Child("write", store_url, counter, tmp_path / "never", 1, "", 600, "-", cwd=tmp_path)
    engine = raw_engine(store_url)
    b_store = qdataset.connect(store_url, flush_interval=0.05)
    try:
        run_id = a.event("started")["id"]
        wait_for(lambda: stored_length(store_url, run_id) >= 300, "A's flushed rows", proc=a)
        set_writer(store_url, run_id, host="elsewhere", expires_at=time.time() - 60)
        with engine.connect() as lock, engine.connect() as watch:
            watch = watch.execution_options(isolation_level="AUTOCOMMIT")
            holder = lock.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            lock.execute(sa.text("SELECT 1 FROM runs WHERE run_id = :r FOR UPDATE"),
                         {"r": run_id})
            wait_for(lambda: len(_blocked_by(watch, holder)) >= 1, "A's flush to queue",
                     proc=a)
            before = stored_length(store_url, run_id)
            outcome: dict = {}

            def resume() -> None:
                try:
                    outcome["ds"] = b_store.resume_dataset(run_id)
                except Exception as exc:  # noqa: BLE001 - reported below
                    outcome["error"] = exc

            thread = threading.Thread(target=resume)
            thread.start()
            wait_for(lambda: len(_blocked_by(watch, holder)) >= 2 or outcome,
                     "B's takeover to queue behind A's flush")
            lock.commit()  # A's flush goes first, then B's takeover
        thread.join(timeout=WAIT)
        assert "error" not in outcome, outcome["error"]
        b = outcome["ds"]
        now = stored_length(store_url, run_id)
        assert now > before, "A's queued flush did not commit first"
        assert b.length == now, (
            f"resume_dataset continued at {b.length}, but {now} results are stored")
        for j in range(b.length, b.length + 100):
            b.add_result(k=float(j), v=float(j), src=2.0)
        b.flush()
        refused = a.event("refused")
        assert refused["error"]["type"] == "WriterActiveError"
        a.event("closed")
        a.finish()
    finally:
        a.kill()
        try:
            b_store.close()
        except qdataset.errors.QDatasetError:
            pass
        engine.dispose()
    run = stored(store_url, run_id)
    assert run.length == len(run.rows) == now + 100
    check_pattern(run.rows)
