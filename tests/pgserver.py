"""A private PostgreSQL server for fault-injection tests.

The shared test server (conftest.POSTGRES_URL) must never be stopped or
killed, so tests that restart or crash a server start their own: ``initdb``
into a temporary directory, ``pg_ctl`` on a free port, trust authentication,
the unix socket inside that directory and TCP on 127.0.0.1 only.

PostgreSQL refuses to run as root.  As root the server runs as the
``postgres`` OS user (``runuser -u postgres --``) in a directory that user
owns; as anyone else it runs as the current user.  Settings keep start-up
quick (small shared_buffers, no initdb sync) but never trade durability
at run time: fsync and full_page_writes keep their defaults, so a crash
loses what PostgreSQL documents it loses, and nothing more.

>>> with PgServer() as server:
...     url = server.url("lab")          # postgresql+psycopg://...:port/lab, created
...     server.restart("fast")
...     server.kill()                    # SIGKILL, as a crash would
...     server.start()                   # crash recovery, then up again

``pg_server`` (a pytest fixture, import it into a test module) skips with the
reason when the binaries, or a way to run them as a non-root user, are missing.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

#: Seconds pg_ctl waits for the server to start or stop.
PG_CTL_TIMEOUT = 60
#: wal_writer_delay the server runs with (PostgreSQL's default), in milliseconds.  An
#: asynchronously committed transaction reaches disk within three times this.
WAL_WRITER_DELAY_MS = 200


class PgServerUnavailable(RuntimeError):
    """This machine cannot run a private PostgreSQL server (the message says why)."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: _version_key(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise PgServerUnavailable(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (initdb, pg_ctl); "
        "install the postgresql package to run the private-server tests")


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One private PostgreSQL cluster in a temporary directory.

    Created stopped-and-empty; :meth:`start` runs initdb on first use.  Use it
    as a context manager (or call :meth:`cleanup`): the server is stopped and
    the directory removed however the test ends.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self._prefix = self._run_as_prefix()
        self.root = Path(tempfile.mkdtemp(prefix="qdt-pg-"))
        if self._prefix:  # the postgres user must own (and reach) the whole tree
            os.chmod(self.root, 0o700)
            shutil.chown(self.root, user="postgres", group=None)
        self.data = self.root / "data"
        self.socket_dir = self.root  # short path: a unix socket path has ~100 bytes
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user = "postgres" if self._prefix else _current_user()
        self._initialised = False
        atexit.register(self.cleanup)  # a test run that dies leaves no server behind

    # -- who runs the binaries -----------------------------------------------------
    @staticmethod
    def _run_as_prefix() -> list[str]:
        """[] to run the binaries directly, or the runuser prefix when we are root."""
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PgServerUnavailable(
                "running as root, and PostgreSQL refuses root: runuser is needed to start "
                "the server as the postgres user, but it is not installed (util-linux)")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise PgServerUnavailable(
                "running as root, and PostgreSQL refuses root, but there is no 'postgres' "
                "OS user to run it as") from None
        return [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str, check: bool = True,
             timeout: float = PG_CTL_TIMEOUT + 30) -> subprocess.CompletedProcess:
        command = [*self._prefix, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=self.root, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n--- server log ---\n{self.log_text()}")
        return result

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    # -- lifetime ----------------------------------------------------------------------
    def initdb(self) -> None:
        # --no-sync: only the initial cluster files skip fsync (a test's crash
        # happens long after the OS wrote them); the running server syncs as usual.
        self._run(self._bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        self._initialised = True

    def start(self) -> None:
        """Start the server (initdb first if needed); returns once it accepts connections."""
        if not self._initialised:
            self.initdb()
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {self.port}", f"-k {self.socket_dir}",
            "-c shared_buffers=16MB", "-c max_connections=40",
            f"-c wal_writer_delay={WAL_WRITER_DELAY_MS}ms",
            "-c max_wal_senders=0", "-c wal_level=minimal",  # no replication: less WAL
            "-c logging_collector=off",
        ])
        self._run(self._bin("pg_ctl"), "start", "-w", "-t", str(PG_CTL_TIMEOUT),
                  "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (clients disconnected, clean shutdown) or ``immediate``
        (every process quits at once, no checkpoint: a crash, recovered at next start)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, not {mode!r}")
        self._run(self._bin("pg_ctl"), "stop", "-w", "-t", str(PG_CTL_TIMEOUT),
                  "-D", str(self.data), "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """Stop in ``mode`` and start again on the same port and directory."""
        if mode == "fast":
            # pg_ctl restart reuses the options the server was started with.
            self._run(self._bin("pg_ctl"), "restart", "-w", "-t", str(PG_CTL_TIMEOUT),
                      "-D", str(self.data), "-m", "fast", "-l", str(self.log))
        else:
            self.stop(mode)
            self.start()

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid, from postmaster.pid (None if it is not running)."""
        try:
            text = (self.data / "postmaster.pid").read_text()
        except (FileNotFoundError, PermissionError):
            return None
        first = text.split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL the postmaster and every process it started, as a crash of the
        server machine would (only the OS page cache survives), and wait until they
        are dead.  :meth:`start` then runs crash recovery."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("the private PostgreSQL server is not running")
        # Each backend calls setsid(), so the process group is no help: collect the
        # postmaster's children first (once it dies they are reparented).
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while any(_alive(victim) for victim in victims):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL processes {victims} outlived SIGKILL")
            time.sleep(0.02)
        # Dead, but perhaps not reaped yet (their parent is now init, which in a
        # container may reap late): a zombie's pid still "exists", so the next
        # postmaster would take the lock files for a live server's.  The server is
        # certainly dead, so they are stale; removing them is the manual recovery.
        for lock in (self.data / "postmaster.pid",
                     self.socket_dir / f".s.PGSQL.{self.port}.lock"):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def running(self) -> bool:
        result = self._run(self._bin("pg_ctl"), "status", "-D", str(self.data), check=False)
        return result.returncode == 0

    def cleanup(self) -> None:
        """Stop the server (immediately: nothing in it is worth a checkpoint) and
        remove its directory.  Safe to call more than once."""
        try:
            if self._initialised and self.data.exists() and self.postmaster_pid() is not None:
                try:
                    self._run(self._bin("pg_ctl"), "stop", "-w", "-t", "30", "-D",
                              str(self.data), "-m", "immediate", check=False, timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                pid = self.postmaster_pid()
                if pid is not None and _alive(pid):
                    with contextlib.suppress(ProcessLookupError, RuntimeError):
                        self.kill(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            atexit.unregister(self.cleanup)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no server log)"

    # -- databases -------------------------------------------------------------------
    def url(self, dbname: str = "qdataset") -> str:
        """A ``postgresql+psycopg://`` URL of database ``dbname``, created if missing."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def __enter__(self) -> PgServer:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is dead: it only awaits reaping)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                found.append(int(entry.name))
    return found


def _current_user() -> str:
    import getpass

    return getpass.getuser()


def unavailable_reason() -> str | None:
    """None if a private server can be made here, else why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'qdataset[postgres]')"
    try:
        find_bindir()
        PgServer._run_as_prefix()
    except PgServerUnavailable as exc:
        return str(exc)
    return None


@pytest.fixture
def pg_server():
    """A started private PostgreSQL server, stopped and deleted after the test."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with PgServer() as server:
        yield server
