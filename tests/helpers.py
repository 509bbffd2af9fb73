"""Test helpers: compare the full contents of a run before and after an operation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def plain(array: np.ndarray) -> list[Any]:
    """A comparable Python list: masked entries -> None, NaN -> "nan", arrays -> lists."""
    if isinstance(array, np.ma.MaskedArray):
        values = array.tolist()
    elif array.dtype == object:
        values = [None if v is None else np.asarray(v).tolist() for v in array]
    else:
        values = array.tolist()
    return [_nan_free(v) for v in values]


def _nan_free(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, complex):
        return ("nan" if math.isnan(value.real) else value.real,
                "nan" if math.isnan(value.imag) else value.imag)
    return value


def snapshot(ds) -> tuple[int, dict[str, list[Any]]]:
    """(length, {name: values}) of every parameter of ``ds``."""
    names = [s.name for s in ds.get_parameters()]
    arrays = ds.get_data(*names) if names else []
    return ds.length, {n: plain(a) for n, a in zip(names, arrays, strict=True)}


def stored(store, run_id: str) -> tuple[int, dict[str, list[Any]]]:
    """The run's contents as the database holds them, read through a fresh view."""
    return snapshot(store.read_dataset(run_id))


def schema_size(store) -> int:
    """Tables, indexes and triggers of a store's database (or PostgreSQL schema)."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            return conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        return conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = "
            "current_schema()::regnamespace) + (SELECT count(*) FROM pg_trigger t JOIN "
            "pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = "
            "current_schema()::regnamespace)").scalar()


def migrate_to(engine, revision: str) -> None:
    """Bring ``engine``'s database to schema ``revision`` with Alembic (an old store)."""
    from alembic import command
    from alembic.config import Config

    from qdataset.store.migrate import migrations_dir

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> bool:
    """Poll ``condition`` (another thread's doing) until it holds; False at the deadline,
    which only guards hangs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
