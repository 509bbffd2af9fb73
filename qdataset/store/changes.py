"""Cheap detection of runs changed by other connections, processes or machines.

A :class:`ChangeFeed` holds one dedicated connection and answers "which of
these runs changed since I last asked, and what is their state now?"
without writing anything to the database.  Each engine has its own way to
avoid querying when nothing happened:

* SQLite: ``PRAGMA data_version`` on the held connection changes whenever
  another connection commits; only then is the ``runs`` table read.
* PostgreSQL: writers send ``NOTIFY qdataset_runs, '<run pk>'`` inside their
  transactions (see ``Dialect.append_epilogue``); the held connection
  LISTENs, and only announced runs are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .boundary import translating
from .dialect import CHANGE_CHANNEL
from .runs import RunStorage

#: A run's state as the feed reports it: (length, completed).
RunState = tuple[int, bool]


class ChangeFeed:
    """Base of the per-engine feeds; create one with :func:`open_change_feed`."""

    def __init__(self, storage: RunStorage, driver: Any) -> None:
        self._storage = storage
        self._driver = driver
        self._last: dict[int, RunState] = {}

    def changed_runs(self, run_keys: Sequence[int]) -> dict[int, RunState]:
        """(length, completed) of the runs among ``run_keys`` whose state changed
        since the last call (every run not asked about before counts as changed)."""
        with translating(self._storage.engine.url):
            unseen = [key for key in run_keys if key not in self._last]
            wanted = self._candidates(list(run_keys), unseen)
            if not wanted:
                return {}
            states = self._storage.run_states(wanted)
        changed = {key: state for key, state in states.items() if self._last.get(key) != state}
        self._last.update(states)
        return changed

    def _candidates(self, run_keys: list[int], unseen: list[int]) -> list[int]:
        """The runs worth reading now (engine-specific)."""
        raise NotImplementedError

    def close(self) -> None:
        try:
            self._driver.close()
        except Exception:  # noqa: BLE001 - closing at shutdown; nothing to keep
            pass


class _SqliteChangeFeed(ChangeFeed):
    def __init__(self, storage: RunStorage, driver: Any) -> None:
        super().__init__(storage, driver)
        self._data_version: int | None = None

    def _candidates(self, run_keys: list[int], unseen: list[int]) -> list[int]:
        cursor = self._driver.cursor()
        try:
            version = cursor.execute("PRAGMA data_version").fetchone()[0]
        finally:
            cursor.close()
        if version == self._data_version and not unseen:
            return []
        self._data_version = version
        return run_keys


class _PostgresChangeFeed(ChangeFeed):
    def __init__(self, storage: RunStorage, driver: Any) -> None:
        super().__init__(storage, driver)
        self._driver.autocommit = True
        self._driver.execute(f"LISTEN {CHANGE_CHANNEL}")

    def _candidates(self, run_keys: list[int], unseen: list[int]) -> list[int]:
        announced = {int(n.payload) for n in self._driver.notifies(timeout=0)}
        return [key for key in run_keys if key in announced and key not in unseen] + unseen


_FEEDS: dict[str, type[ChangeFeed]] = {"sqlite": _SqliteChangeFeed,
                                       "postgresql": _PostgresChangeFeed}


def open_change_feed(storage: RunStorage) -> ChangeFeed:
    """A change feed on its own connection, detached from the pool (its session
    state, such as LISTEN, must not go back to other users)."""
    engine: sa.Engine = storage.engine
    with translating(engine.url):
        pooled = engine.raw_connection()
        driver = pooled.driver_connection
        pooled.detach()
        try:
            return _FEEDS[engine.dialect.name](storage, driver)
        except BaseException:
            driver.close()
            raise
