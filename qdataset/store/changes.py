"""Cheap detection of runs changed by other connections, processes or machines.

A :class:`ChangeFeed` holds one dedicated connection and answers "which of
these runs changed since I last asked, and what is their state now?"
without writing anything to the database.  Each engine module has its own
subclass that avoids querying when nothing happened (SQLite: ``PRAGMA
data_version``; PostgreSQL: LISTEN/NOTIFY).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .boundary import translating

if TYPE_CHECKING:
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


def open_change_feed(storage: RunStorage) -> ChangeFeed:
    """A change feed on its own connection, detached from the pool (its session
    state, such as LISTEN, must not go back to other users)."""
    engine: sa.Engine = storage.engine
    with translating(engine.url):
        pooled = engine.raw_connection()
        driver = pooled.driver_connection
        pooled.detach()
        try:
            return storage.dialect.change_feed(storage, driver)
        except BaseException:
            driver.close()
            raise
