"""A long row-by-row loop must not push CPython's collector into full passes.

Rows wait in the writer's buffer until the flusher writes them.  Kept as lists,
every buffered row was a container the collector tracks: it survived the young
collections into the oldest generation, and each time those survivors reached a
quarter of the process's long-lived objects the collector walked all of them
(four full passes, about 200 ms, in a 400,000-row loop of 0.93 s).  Kept as tuples
of numbers and strings, the collector stops tracking them at their first
collection, and nothing piles up.
"""

from __future__ import annotations

import gc

import numpy as np

from qdataset import DataSet, ParamSpec


def test_buffered_rows_do_not_cause_full_collections(store):
    ds = DataSet("gc", [ParamSpec("x", np.float64), ParamSpec("y", np.float64),
                        ParamSpec("s", str, optional=True)], store=store)
    full: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.collect()  # start from a settled heap: what follows is the loop's doing
    gc.callbacks.append(count)
    try:
        for i in range(200_000):
            ds.add_result(x=float(i), y=0.5 * i, s=None if i % 7 else "tag")
    finally:
        gc.callbacks.remove(count)
    ds.mark_completed()
    assert full == []
    assert ds.get_data("x")[0][-1] == 199_999.0
