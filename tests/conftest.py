"""Shared fixtures: a fresh store per test."""

from __future__ import annotations

import numpy as np
import pytest

import qdataset
from qdataset import ParamSpec


@pytest.fixture
def store_url(tmp_path) -> str:
    """URL of a fresh, empty store."""
    return f"sqlite:///{tmp_path / 'lab.db'}"


@pytest.fixture
def store(store_url):
    """A connected fresh store, closed after the test."""
    s = qdataset.connect(store_url, flush_interval=0.05)
    yield s
    s.close()


@pytest.fixture
def xy_specs() -> list[ParamSpec]:
    return [
        ParamSpec("x", np.float64, role="setpoint", unit="V"),
        ParamSpec("y", np.float64, depends_on=["x"]),
    ]
