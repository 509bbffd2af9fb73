"""Followers: the server's one reader per watched run, and one for the run list.

However many browser sessions watch a run, the server subscribes to it once
(``DataSet.subscribe`` on a view, which rides on the store's cross-process
change detection: ``PRAGMA data_version`` on SQLite, LISTEN/NOTIFY on
PostgreSQL), reads only the new rows through one cursor, keeps them in
:class:`~qdataset.web.columns.Columns`, and tells every session that something
changed.  Sessions then take what they need from the shared columns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import QDatasetError
from .columns import Columns

if TYPE_CHECKING:
    from ..dataset import DataSet
    from ..store import RunInfo, Store

log = logging.getLogger("qdataset.web")

#: Milliseconds between two updates of one run (the subscription's min_wait).
UPDATE_MS = 200
#: Seconds between re-reads of a running run's metadata (it changes without rows).
METADATA_S = 2.0
#: Seconds between two looks at the run list while someone watches it.
LIST_POLL_S = 0.5
#: Seconds between two looks at whether the writers of followed, incomplete runs
#: are still there (a writer that dies sends nothing, so only looking tells).
WRITER_CHECK_S = 2.0

Listener = Callable[[Any], None]


class RunFollower:
    """Follows one run for every session that shows it.

    ``listener(follower)`` is called on a background thread whenever rows,
    state or metadata changed; it must only schedule work (Bokeh sessions use
    ``doc.add_next_tick_callback``).
    """

    def __init__(self, view: DataSet) -> None:
        self.view = view
        self.id = view.id
        self.name = view.name
        self.created_at = view.created_at
        self.specs = view.get_parameters()
        self.columns = Columns(self.specs)
        self.completed = False
        self.failed = False
        self.interrupted = False  # incomplete, and its writer is gone (resumable)
        self.metadata: dict[str, Any] = {}
        self.error: str | None = None  # why following stopped, if it did
        self.ready = threading.Event()  # set once the rows present at start are read
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._cursor = view.cursor(0)
        self._subscription: Any = None
        self._metadata_at = 0.0
        self._closed = False

    @property
    def state(self) -> str:
        """"running", "interrupted", "completed" or "failed" (as ``RunInfo.state``)."""
        if self.failed:
            return "failed"
        if self.completed:
            return "completed"
        return "interrupted" if self.interrupted else "running"

    def _writer_gone(self) -> bool:
        """Whether the run is "interrupted" now: incomplete, its writer gone."""
        return self.view.store.run_info(self.id).state == "interrupted"

    def check_writer(self) -> None:
        """Look whether the run's writer is gone (or back, after a resume), and tell
        the sessions if that changed."""
        if self.completed or self._closed:
            return
        try:
            interrupted = self._writer_gone()
        except QDatasetError as exc:
            log.warning("qdataset serve: cannot read the state of run %s: %s", self.id, exc)
            return
        if interrupted != self.interrupted:
            self.interrupted = interrupted
            self._tell()

    def start(self) -> None:
        """Subscribe and read the rows already there, on a thread of its own (a run
        of millions of rows takes a moment; sessions show "loading" meanwhile)."""
        threading.Thread(target=self._start, name=f"qdataset-web-{self.id}",
                         daemon=True).start()

    def _start(self) -> None:
        try:
            # Subscribe first: rows written while the first read runs are then
            # announced to the callback, which reads on from the same cursor.
            self._subscription = self.view.subscribe(self._changed, min_wait=UPDATE_MS)
            self._pull()
            if not self.completed:
                self.interrupted = self._writer_gone()
        except QDatasetError as exc:
            self.error = " ".join(str(exc).split())
        self.ready.set()
        self._tell()

    def _changed(self, dataset: DataSet, length: int, state: Any) -> None:
        if not self.ready.is_set() or self._closed:
            return  # the first read is still running and reads these rows too
        try:
            self._pull()
        except QDatasetError as exc:
            self.error = " ".join(str(exc).split())
        self._tell()

    def _pull(self) -> None:
        with self._pull_lock:
            # Completion first: if the run was complete before the read, the read
            # returned its last rows, so "completed" is never shown with rows missing.
            completed = self.view.is_marked_complete
            names = [s.name for s in self.specs]
            if names:
                self.columns.extend(self._cursor.read(*names))
            now = time.monotonic()
            if completed or now - self._metadata_at >= METADATA_S:
                self._metadata_at = now
                self.metadata = {tag: value for tag, value in self.view.get_metadata().items()
                                 if tag not in ("id", "parameters")}
                self.failed = "error" in self.metadata
            self.completed = completed

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> int:
        """Forget ``listener``; how many remain."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            return len(self._listeners)

    def _tell(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(self)
            except Exception:  # noqa: BLE001 - one broken session must not stop the rest
                log.exception("qdataset serve: a session's update failed")

    def close(self) -> None:
        """Stop following (the last session left)."""
        self._closed = True
        if self._subscription is not None:
            try:
                self.view.unsubscribe(self._subscription)
            except QDatasetError:
                pass


class RunHub:
    """The followers of one store, shared by all sessions: one per watched run.

    While it follows runs, a thread looks every ``writer_check`` seconds whether
    the writers of the incomplete ones are still there."""

    def __init__(self, store: Store, writer_check: float = WRITER_CHECK_S) -> None:
        self.store = store
        self.writer_check = writer_check
        self._followers: dict[str, RunFollower] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None

    def _check_writers(self) -> None:
        while not self._stop.wait(self.writer_check):
            with self._lock:
                followers = list(self._followers.values())
            for follower in followers:
                if follower.ready.is_set():
                    follower.check_writer()

    def follow(self, run: str, listener: Listener) -> RunFollower:
        """The follower of run ``run`` (an id, or whatever ``store.read_dataset``
        accepts), with ``listener`` added; RunNotFoundError if there is no such run.
        The listener hears of changes from now on: show the follower's state first."""
        view = self.store.read_dataset(run)
        with self._lock:
            follower = self._followers.get(view.id)
            fresh = follower is None
            if follower is None:
                follower = self._followers[view.id] = RunFollower(view)
            follower.add_listener(listener)
            if self._checker is None:
                self._checker = threading.Thread(target=self._check_writers, daemon=True,
                                                 name="qdataset-web-writers")
                self._checker.start()
        if fresh:
            follower.start()
        return follower

    def leave(self, follower: RunFollower, listener: Listener) -> None:
        """Remove ``listener``; the last one to leave stops the follower."""
        with self._lock:
            if follower.remove_listener(listener) or \
                    self._followers.get(follower.id) is not follower:
                return
            del self._followers[follower.id]
        follower.close()

    @property
    def followed(self) -> list[str]:
        """Ids of the runs followed now."""
        with self._lock:
            return list(self._followers)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            followers, self._followers = list(self._followers.values()), {}
        for follower in followers:
            follower.close()


class RunListWatcher:
    """Looks at the store's run list while at least one session shows it, and tells
    the sessions when it changed (new runs, growing row counts, new states)."""

    def __init__(self, store: Store, interval: float = LIST_POLL_S) -> None:
        self.store = store
        self.interval = interval
        self.runs: list[RunInfo] = []
        self.error: str | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fingerprint: tuple[Any, ...] | None = None  # of the store when last listed
        self._writers_seen = 0.0  # monotonic time the incomplete runs were last read

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qdataset-web-runs",
                                                daemon=True)
                self._thread.start()
        self._wake.set()  # a new page gets the list now, not after the interval

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _look(self) -> list[RunInfo]:
        """The run list now.  It is listed again only when the store's fingerprint
        moved (listing 10,000 runs takes a tenth of a second); the writers of
        incomplete runs, which can die without a write, are looked at every
        WRITER_CHECK_S through the (few) incomplete runs alone."""
        now = time.monotonic()
        seen = self.store.runs_fingerprint()
        if seen != self._fingerprint:
            runs = self.store.runs()
            self._fingerprint, self._writers_seen = seen, now
            return runs
        if now - self._writers_seen >= WRITER_CHECK_S and any(
                not r.completed for r in self.runs):
            self._writers_seen = now
            incomplete = {r.id: r for r in self.store.runs(completed=False)}
            return [incomplete.get(r.id, r) for r in self.runs]
        return self.runs

    def _run(self) -> None:
        last: list[Any] | None = None
        while not self._closed:
            woken = self._wake.is_set()
            self._wake.clear()
            with self._lock:
                listeners = list(self._listeners)
            if listeners:
                try:
                    runs = self._look()
                    self.error = None
                except QDatasetError as exc:
                    runs, self._fingerprint = self.runs, None
                    self.error = " ".join(str(exc).split())
                changed = runs != last
                last = self.runs = runs
                for listener in listeners if changed or woken else ():
                    try:
                        listener(self)
                    except Exception:  # noqa: BLE001
                        log.exception("qdataset serve: a run list update failed")
            self._wake.wait(self.interval)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

