"""Shared pieces of the benchmark workers: sizes, input data, timing and memory probes.

This module only imports the standard library and numpy, so that a worker for
any implementation (raw sqlite3, qdataset, QCoDeS on another interpreter) can
use it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEED = 12345
PARAMS = ("x", "y", "a", "b")  # two setpoints (x, y) and two outputs (a, b)


@dataclass(frozen=True)
class CaseArgs:
    """What a worker needs to run one case once."""

    path: str  # the database file to write (A, B, C) or read (D)
    rows: int  # number of rows of the case
    points: int = 1000  # trace length of case C
    run_id: str | None = None  # case D: which run to read (qdataset id, QCoDeS run id)


@dataclass
class Measurement:
    """Wall time and memory of the timed part of a case.

    ``start`` resets the kernel's peak-RSS counter (``/proc/self/clear_refs``)
    when it can, so ``peak_delta_mb`` is the memory the work itself needed on
    top of what was already resident (interpreter, libraries, input arrays).
    """

    seconds: float = 0.0
    rss_before_mb: float = 0.0
    peak_rss_mb: float = 0.0
    peak_reset: bool = False
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> None:
        """Reset the peak-RSS counter, remember the resident size, start the clock."""
        self.peak_reset = reset_peak_rss()
        self.rss_before_mb = proc_status_mb("VmRSS")
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        """Stop the clock and read the peak resident size."""
        self.seconds = time.perf_counter() - self._t0
        self.peak_rss_mb = proc_status_mb("VmHWM")

    def as_dict(self) -> dict[str, Any]:
        """The numbers a worker reports."""
        return {
            "seconds": self.seconds,
            "rss_before_mb": self.rss_before_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_delta_mb": max(0.0, self.peak_rss_mb - self.rss_before_mb),
            "peak_reset": self.peak_reset,
        }


def proc_status_mb(key: str) -> float:
    """A memory line of ``/proc/self/status`` (e.g. VmRSS, VmHWM) in MB; ru_maxrss as fallback."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def file_size_mb(path: str) -> float:
    """Size of a SQLite database in MB, counting its -wal and -journal files if left over."""
    total = 0
    for suffix in ("", "-wal", "-journal"):
        try:
            total += os.path.getsize(path + suffix)
        except OSError:
            pass
    return total / 1e6


def grid_columns(rows: int, inner: int = 1000) -> dict[str, np.ndarray]:
    """Four float64 columns: an x/y sweep grid (setpoints) and two noisy outputs."""
    inner = max(1, min(inner, rows))
    outer = -(-rows // inner)
    xs = np.repeat(np.linspace(-1.0, 1.0, outer), inner)[:rows]
    ys = np.tile(np.linspace(-0.5, 0.5, inner), outer)[:rows]
    rng = np.random.default_rng(SEED)
    return {
        "x": np.ascontiguousarray(xs),
        "y": np.ascontiguousarray(ys),
        "a": rng.standard_normal(rows),
        "b": rng.standard_normal(rows),
    }


def grid_rows(rows: int) -> list[tuple[float, float, float, float]]:
    """Case A's input: the same kind of data as plain Python floats, one tuple per row."""
    cols = grid_columns(rows, inner=100)
    return list(zip(*(cols[p].tolist() for p in PARAMS), strict=True))


def traces(rows: int, points: int) -> tuple[list[float], np.ndarray]:
    """Case C's input: one scalar setpoint per row and a (rows, points) float64 block."""
    rng = np.random.default_rng(SEED)
    return np.linspace(0.0, 1.0, rows).tolist(), rng.standard_normal((rows, points))


def compare_grid(arrays: list[np.ndarray], rows: int) -> str:
    """How arrays read back (x, y, a, b) compare with ``grid_columns(rows)``.

    "exact" (bit for bit), "close" (equal within 1e-12 relative: QCoDeS does
    not round-trip float64 exactly) or "wrong".
    """
    expected = grid_columns(rows)
    if len(arrays) != len(PARAMS):
        return "wrong"
    got = [np.asarray(a) for a in arrays]
    pairs = list(zip(got, (expected[p] for p in PARAMS), strict=True))
    if all(np.array_equal(g, e) for g, e in pairs):
        return "exact"
    if all(g.shape == e.shape and np.allclose(g, e, rtol=1e-12, atol=0) for g, e in pairs):
        return "close"
    return "wrong"


def input_mb(arrays: dict[str, np.ndarray]) -> float:
    """Total size of the input arrays in MB."""
    return sum(a.nbytes for a in arrays.values()) / 1e6
