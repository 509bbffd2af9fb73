"""Shared results tables: placement by layout, bounded width, limits checked up front."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import schema_size

import qdataset
from qdataset import DataSet, ParamSpec, StorageLimitError
from qdataset.store.layouts import SHARED_WIDTH


def placement(store, run_id: str) -> tuple[str, dict[str, str]]:
    """(results table, parameter -> column) of a run, read with plain SQL."""
    with store.engine.connect() as conn:
        pk, table = conn.execute(sa.text(
            "SELECT pk, results_table FROM runs WHERE run_id = :id"), {"id": run_id}).one()
        columns = dict(conn.execute(sa.text(
            "SELECT name, column_name FROM run_params WHERE run_pk = :pk"), {"pk": pk}).all())
    return table, columns


def xy(name: str, store, rows: int = 3) -> DataSet:
    ds = DataSet(name, [ParamSpec("x", np.float64, role="setpoint"),
                        ParamSpec("y", np.float64, depends_on=["x"])], store=store)
    ds.add_results({"x": np.arange(rows, dtype=float), "y": np.ones(rows)})
    return ds


def test_runs_of_one_layout_share_a_table_and_add_no_schema_objects(store):
    first = xy("sweep", store)
    first.mark_completed()
    objects = schema_size(store)
    runs = [xy("sweep", store, rows=i + 1) for i in range(20)]
    for ds in runs:
        ds.mark_completed()
    assert schema_size(store) == objects  # no table, index or trigger per run
    tables = {placement(store, ds.id)[0] for ds in [first, *runs]}
    assert len(tables) == 1
    for i, ds in enumerate(runs):  # and each run reads back only its own rows
        assert store.read_dataset(ds.id).get_data("x")[0].tolist() == list(range(i + 1))


def test_anyone_can_read_a_run_with_plain_sql(store):
    ds = xy("plain", store, rows=4)
    ds.flush()
    table, columns = placement(store, ds.id)
    with store.engine.connect() as conn:
        pk = conn.execute(sa.text("SELECT pk FROM runs WHERE run_id = :id"),
                          {"id": ds.id}).scalar_one()
        rows = conn.exec_driver_sql(
            f'SELECT "{columns["x"]}", "{columns["y"]}" FROM "{table}" '
            f'WHERE "_qd_run" = {pk} ORDER BY "_qd_index"').all()
    assert rows == [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0)]


def test_a_name_stored_as_another_type_gets_a_column_of_its_own(store):
    floats = DataSet("f", [ParamSpec("v", np.float64)], store=store)
    texts = DataSet("t", [ParamSpec("V", np.str_)], store=store)  # same name, other type
    floats.add_result(v=1.5)
    texts.add_result(V="one")
    table_f, cols_f = placement(store, floats.id)
    table_t, cols_t = placement(store, texts.id)
    assert table_f == table_t  # narrow enough to share
    assert cols_f["v"].casefold() != cols_t["V"].casefold()
    assert floats.get_data("v")[0].tolist() == [1.5]
    assert texts.get_data("V")[0].tolist() == ["one"]


def test_tables_stay_within_the_shared_width(store):
    """Runs whose every parameter has a name of its own fill a table up to
    SHARED_WIDTH columns, then start another: a bounded number of narrow tables."""
    per_run = 5
    runs = []
    for i in range(2 * SHARED_WIDTH // per_run + 1):
        ds = DataSet(f"unique{i}", [ParamSpec(f"p{i}_{k}", np.float64) for k in range(per_run)],
                     store=store)
        ds.add_result(**{f"p{i}_{k}": float(i * k) for k in range(per_run)})
        runs.append(ds)
    with store.engine.connect() as conn:
        widths = [w for (w,) in conn.exec_driver_sql("SELECT width FROM results_tables")]
    assert max(widths) <= SHARED_WIDTH
    assert len(widths) <= 3  # 27 runs x 5 columns in tables of at most 64
    for i, ds in enumerate(runs):
        assert ds.get_data(f"p{i}_2")[0].tolist() == [float(2 * i)]


def test_a_wide_run_gets_a_table_of_exactly_its_width(store):
    specs = [ParamSpec(f"w{k}", np.float64) for k in range(SHARED_WIDTH + 10)]
    ds = DataSet("wide", specs, store=store)
    ds.add_result(**{s.name: 1.0 for s in specs})
    narrow = xy("narrow", store)
    narrow.flush()
    assert placement(store, ds.id)[0] != placement(store, narrow.id)[0]
    with store.engine.connect() as conn:
        widths = sorted(w for (w,) in conn.exec_driver_sql("SELECT width FROM results_tables"))
    assert widths[-1] == SHARED_WIDTH + 10  # the narrow run did not join the wide table
    assert len(widths) == 2


def test_parameter_added_mid_run_adds_a_column_only_where_missing(store):
    a = xy("a", store)
    b = xy("b", store)
    a.add_parameter(ParamSpec("extra", np.int64, optional=True))
    a.add_result(x=9.0, y=9.0, extra=7)
    b.add_parameter(ParamSpec("extra", np.int64, optional=True))  # the column exists now
    b.add_result(x=8.0, y=8.0, extra=6)
    assert placement(store, a.id)[0] == placement(store, b.id)[0]
    assert a.get_data("extra")[0].tolist() == [None, None, None, 7]
    assert b.get_data("extra")[0].tolist() == [None, None, None, 6]
    with qdataset.connect(store.url) as other:  # a view elsewhere sees the new column
        assert other.read_dataset(a.id).get_data("extra")[0].tolist()[-1] == 7


def test_too_many_parameters_are_refused_before_anything_is_created(store):
    limit = 1598  # the same on every engine
    specs = [ParamSpec(f"p{k}", np.float64) for k in range(limit + 1)]
    before = schema_size(store)
    with pytest.raises(StorageLimitError, match="fewer"):
        DataSet("too wide", specs, store=store)
    assert store.runs() == [] and schema_size(store) == before


def test_postgresql_row_size_is_checked_up_front(store):
    """On PostgreSQL a row must fit an 8 kB page: 1,017 float parameters would be
    created and then never written; it is refused before anything is created.  The
    check counts the NULL bitmap, so a run that fits can hold missing values too."""
    if store.dialect != "postgresql":
        pytest.skip("the 8 kB row limit is PostgreSQL's; SQLite has none that matters here")
    specs = [ParamSpec(f"f{k}", np.float64) for k in range(1017)]
    with pytest.raises(StorageLimitError, match="8160"):
        DataSet("too big a row", specs, store=store)
    assert store.runs() == []
    with pytest.raises(StorageLimitError):
        DataSet("one too many", [ParamSpec(f"f{k}", np.float64) for k in range(1000)],
                store=store)
    fits = [ParamSpec(f"f{k}", np.float64, optional=True) for k in range(999)]
    ds = DataSet("fits", fits, store=store)
    ds.add_result(**{s.name: float(k) for k, s in enumerate(fits)})
    ds.add_result(f0=1.0)  # 998 missing values: the widest row with a NULL bitmap
    ds.mark_completed()  # written for real
    assert ds.get_data("f998")[0].tolist()[0] == 998.0
    assert np.isnan(ds.get_data("f998")[0][1])
