"""dataframe_from_dataset: setpoints as the index, values as columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qdataset import DataSet, ParamSpec, dataframe_from_dataset


def test_one_setpoint_is_the_index(store, xy_specs):
    xs = np.linspace(0, 1, 5)
    ds = DataSet("df", xy_specs, [xs, xs**2], store=store)
    ds.mark_completed()
    df = dataframe_from_dataset(ds)
    assert isinstance(df, pd.DataFrame)
    assert df.index.name == "x"
    assert df.index.tolist() == xs.tolist()
    assert list(df.columns) == ["y"]
    assert df["y"].tolist() == (xs**2).tolist()
    assert df["y"].dtype == np.float64


def test_two_setpoints_make_a_multi_index(store):
    specs = [ParamSpec("g1", np.float64, role="setpoint"),
             ParamSpec("g2", np.int64, role="setpoint"),
             ParamSpec("G", np.float64, depends_on=["g1", "g2"]),
             ParamSpec("label", str)]
    ds = DataSet("grid", specs, store=store)
    rows = [{"g1": a, "g2": b, "G": a * b, "label": f"{a}/{b}"}
            for a in (0.0, 0.5) for b in (1, 2, 3)]
    ds.add_results(rows)
    df = dataframe_from_dataset(ds)
    assert isinstance(df.index, pd.MultiIndex)
    assert list(df.index.names) == ["g1", "g2"]
    assert df.index.tolist() == [(r["g1"], r["g2"]) for r in rows]
    assert df["G"].tolist() == [r["G"] for r in rows]
    assert df["label"].tolist() == [r["label"] for r in rows]
    assert df.loc[(0.5, 2), "G"] == 1.0


def test_no_setpoints_keeps_a_range_index(store):
    ds = DataSet("plain", [ParamSpec("a", np.float64), ParamSpec("b", np.int64)],
                 [[1.0, 2.0, 3.0], [4, 5, 6]], store=store)
    df = dataframe_from_dataset(ds)
    assert df.index.tolist() == [0, 1, 2]
    assert df["a"].tolist() == [1.0, 2.0, 3.0]
    assert df["b"].tolist() == [4, 5, 6]


def test_nulls_arrays_and_buffered_rows(store_url):
    import qdataset

    with qdataset.connect(store_url, flush_interval=60) as slow:
        specs = [ParamSpec("x", np.float64, role="setpoint"),
                 ParamSpec("n", np.int64, optional=True),
                 ParamSpec("f", np.float64, optional=True),
                 ParamSpec("trace", np.float64, shape=(3,))]
        ds = DataSet("nulls", specs, store=slow)
        ds.add_result(x=0.0, n=1, f=0.5, trace=[1, 2, 3])
        ds.add_result(x=1.0, trace=[4, 5, 6])  # buffered only
        df = dataframe_from_dataset(ds)
        assert df.index.tolist() == [0.0, 1.0]
        assert df["n"].iloc[0] == 1 and pd.isna(df["n"].iloc[1])
        assert df["f"].iloc[0] == 0.5 and np.isnan(df["f"].iloc[1])
        assert [list(t) for t in df["trace"]] == [[1, 2, 3], [4, 5, 6]]


def test_empty_dataset(store, xy_specs):
    df = dataframe_from_dataset(DataSet("empty", xy_specs, store=store))
    assert len(df) == 0
    assert list(df.columns) == ["y"]
