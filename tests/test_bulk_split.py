"""A big bulk write is split into short transactions (issue 13, item 6), so it never
holds SQLite's write lock for long, and a failure part-way says exactly what was stored."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from faults import failing_write_number

import qdataset
from qdataset import DataSet, FlushError, ParamSpec

SPECS = [ParamSpec("x", np.float64), ParamSpec("y", np.float64)]


@pytest.fixture
def small_transactions(monkeypatch):
    import qdataset.dataset

    monkeypatch.setattr(qdataset.dataset, "BULK_TRANSACTION_CELLS", 20)  # 10 rows of 2


def count_commits(store):
    commits = []
    sa.event.listen(store.engine, "commit", lambda conn: commits.append(1))
    return commits


def test_bulk_write_commits_in_slices_and_stores_everything(store, small_transactions):
    ds = DataSet("bulk", SPECS, store=store)
    commits = count_commits(store)
    xs = np.arange(35.0)
    assert ds.add_results({"x": xs, "y": -xs}) == 0
    assert len(commits) == 4  # 10 + 10 + 10 + 5 rows
    with qdataset.connect(store.url) as other:
        x, y = other.read_dataset(ds.id).get_data("x", "y")
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(y, -xs)


def test_bulk_write_failing_part_way_says_what_was_stored(store, small_transactions):
    ds = DataSet("bulk", SPECS, store=store)
    with failing_write_number(store, 3), \
            pytest.raises(FlushError, match=r"first 20 of these 35 results were stored "
                                            r"\(indices 0\.\.19\), the other 15 were not"):
        ds.add_results({"x": np.arange(35.0), "y": np.zeros(35)})
    assert ds.length == 20
    assert ds.add_results({"x": np.arange(20.0, 35.0), "y": np.zeros(15)}) == 20
    np.testing.assert_array_equal(ds.get_data("x")[0], np.arange(35.0))
