"""The background timer that writes buffered results to the database."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("qdataset")


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    """Flushes every buffer handed to :meth:`request` within ``interval`` seconds.

    One daemon thread per store, started on first use.  A buffer waiting to
    be flushed is referenced here, so rows are never lost to garbage
    collection of a DataSet that still has unwritten results.
    """

    def __init__(self, interval: float, name: str = "qdataset-flusher") -> None:
        self.interval = interval
        self._name = name
        self._pending: dict[int, Flushable] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def request(self, buffer: Flushable) -> None:
        """Schedule ``buffer.flush()`` within the interval."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._pending[id(buffer)] = buffer
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, buffer: Flushable) -> None:
        """Forget ``buffer`` (it flushed itself)."""
        with self._cond:
            self._pending.pop(id(buffer), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                # Let rows accumulate for one interval, then write them all.  More
                # requests notify meanwhile; they must not cut the interval short.
                deadline = time.monotonic() + self.interval
                while not self._closed and (remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(remaining)
                if self._closed:
                    return
                batch, self._pending = self._pending, {}
            for buffer in batch.values():
                try:
                    buffer.flush()
                except Exception:  # the rows stay buffered; the next flush retries
                    log.exception("qdataset: background flush failed; rows kept in memory")

    def close(self) -> None:
        """Stop the thread and flush what is still pending, in the caller's thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        with self._cond:
            batch, self._pending = self._pending, {}
        errors = []
        for buffer in batch.values():
            try:
                buffer.flush()
            except Exception as exc:  # keep flushing the others
                errors.append(exc)
        if errors:
            raise errors[0]
