"""Shared results tables: placement by layout, bounded width, limits checked up front."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import schema_size

import qdataset
from qdataset import DataSet, ParamSpec, StorageLimitError
from qdataset.store import layouts
from qdataset.store.layouts import SHARED_WIDTH


def placement(store, run_id: str) -> tuple[str, dict[str, str]]:
    """(results table, parameter -> column) of a run, read with plain SQL."""
    with store.engine.connect() as conn:
        pk, table = conn.execute(sa.text(
            "SELECT pk, results_table FROM runs WHERE run_id = :id"), {"id": run_id}).one()
        columns = dict(conn.execute(sa.text(
            "SELECT name, column_name FROM run_params WHERE run_pk = :pk"), {"pk": pk}).all())
    return table, columns


def plain_sql(store, run_id: str, *names: str) -> list[tuple]:
    """A run's values of ``names``, read as the README shows: the run's table and
    columns from ``runs`` and ``run_params``, then one SELECT of its rows."""
    table, columns = placement(store, run_id)
    with store.engine.connect() as conn:
        pk = conn.execute(sa.text("SELECT pk FROM runs WHERE run_id = :id"),
                          {"id": run_id}).scalar_one()
        selected = ", ".join(f'"{columns[n]}"' for n in names)
        return [tuple(r) for r in conn.exec_driver_sql(
            f'SELECT {selected} FROM "{table}" WHERE "_qd_run" = {pk} ORDER BY "_qd_index"')]


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
    assert plain_sql(store, ds.id, "x", "y") == [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0)]


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


def store_columns(store) -> dict[str, list[str]]:
    """The parameter columns of every results table, as the database has them."""
    inspector = sa.inspect(store.engine)
    with store.engine.connect() as conn:
        tables = [t for (t,) in conn.exec_driver_sql("SELECT name FROM results_tables")]
    return {t: sorted(c["name"] for c in inspector.get_columns(t)
                      if not c["name"].startswith("_qd_")) for t in tables}


def own_names_run(store, tag: str, rows: int = 3) -> DataSet:
    """A run whose two float parameters and one text parameter have names no other run uses."""
    ds = DataSet(f"own {tag}", [ParamSpec(f"{tag}_t", np.float64, role="setpoint"),
                                ParamSpec(f"{tag}_v", np.float64, depends_on=[f"{tag}_t"]),
                                ParamSpec(f"{tag}_s", np.str_, depends_on=[f"{tag}_t"])],
                 store=store)
    ds.add_results({f"{tag}_t": np.arange(rows) + 0.5, f"{tag}_v": -np.arange(rows) * 2.0,
                    f"{tag}_s": [f"{tag}{i}" for i in range(rows)]})
    return ds


def check_own_names_run(ds: DataSet, tag: str, rows: int = 3) -> None:
    t, v, s = ds.get_data(f"{tag}_t", f"{tag}_v", f"{tag}_s")
    assert t.tolist() == (np.arange(rows) + 0.5).tolist()
    assert v.tolist() == (-np.arange(rows) * 2.0).tolist()
    assert s.tolist() == [f"{tag}{i}" for i in range(rows)]


def test_past_named_columns_new_names_share_free_columns_without_ddl(store, monkeypatch):
    """Once the store holds NAMED_COLUMNS parameter columns, a run with names of
    its own takes free columns of its types: no ALTER, no new table, each of its
    parameters in a column of its own, and every run reads back its own values."""
    monkeypatch.setattr(layouts, "NAMED_COLUMNS", 6)
    named = [own_names_run(store, f"n{i}") for i in range(2)]  # 6 columns, each named
    for ds in named:
        assert set(placement(store, ds.id)[1].values()) == {f"n{named.index(ds)}_{k}"
                                                            for k in "tvs"}
    before = store_columns(store)
    shared = [own_names_run(store, f"s{i}", rows=i + 2) for i in range(5)]
    for ds in shared:
        ds.mark_completed()
    assert store_columns(store) == before  # no DDL for any of them
    for i, ds in enumerate(shared):
        table, columns = placement(store, ds.id)
        assert len(set(columns.values())) == 3  # distinct columns within one run
        assert all(c in before[table] for c in columns.values())
        check_own_names_run(store.read_dataset(ds.id), f"s{i}", rows=i + 2)
    for i, ds in enumerate(named):  # the runs that made the columns are untouched
        check_own_names_run(store.read_dataset(ds.id), f"n{i}")
    with qdataset.connect(store.url) as other:  # a view elsewhere follows the mapping
        check_own_names_run(other.read_dataset(shared[-1].id), "s4", rows=6)


def test_shared_columns_are_found_with_plain_sql(store, monkeypatch):
    monkeypatch.setattr(layouts, "NAMED_COLUMNS", 3)
    own_names_run(store, "first").flush()
    ds = own_names_run(store, "second", rows=2)
    ds.flush()
    assert placement(store, ds.id)[1]["second_v"] != "second_v"  # a column made for another name
    assert plain_sql(store, ds.id, "second_t", "second_v") == [(0.5, 0.0), (1.5, -2.0)]


def test_a_run_whose_types_fit_no_table_still_gets_columns(store, monkeypatch):
    """Sharing needs free columns of the run's types; without them the run's table
    grows (or a new one is made) as before the store filled up."""
    monkeypatch.setattr(layouts, "NAMED_COLUMNS", 2)
    xy("floats", store).flush()
    ds = DataSet("ints", [ParamSpec("k", np.int64), ParamSpec("m", np.int64)], store=store)
    ds.add_result(k=3, m=4)
    ds.flush()
    assert placement(store, ds.id)[1] == {"k": "k", "m": "m"}
    assert [a.tolist() for a in ds.get_data("k", "m")] == [[3], [4]]


def test_a_parameter_added_mid_run_never_takes_a_column_the_run_uses(store, monkeypatch):
    """A run that shares columns may already hold the column made for the name of
    a parameter it adds later: that parameter goes to another column."""
    monkeypatch.setattr(layouts, "NAMED_COLUMNS", 3)
    first = own_names_run(store, "first")
    first.flush()
    ds = DataSet("late", [ParamSpec("a", np.float64, role="setpoint")], store=store)
    ds.add_result(a=1.0)
    held = placement(store, ds.id)[1]["a"]
    assert held != "a"
    ds.add_parameter(ParamSpec(held, np.float64, optional=True))  # the name of a's column
    ds.add_parameter(ParamSpec("brand_new", np.float64, optional=True))
    ds.add_result(a=2.0, **{held: 20.0, "brand_new": 200.0})
    columns = placement(store, ds.id)[1]
    assert len(set(columns.values())) == 3
    assert columns["a"] == held and columns[held] != held
    assert ds.get_data("a")[0].tolist() == [1.0, 2.0]
    assert np.isnan(ds.get_data(held)[0][0]) and ds.get_data(held)[0][1] == 20.0
    assert ds.get_data("brand_new")[0][1] == 200.0
    check_own_names_run(store.read_dataset(first.id), "first")
    # a later run asking for the name gets the column made for it, not a stray one
    other = DataSet("named", [ParamSpec(held, np.float64)], store=store)
    other.add_result(**{held: 7.0})
    other.flush()
    assert placement(store, other.id)[1] == {held: held}


def test_sharing_leaves_wide_tables_to_their_runs(store, monkeypatch):
    """A small run never shares the columns of a table wider than SHARED_WIDTH:
    each of its rows would carry a byte for every column there."""
    monkeypatch.setattr(layouts, "NAMED_COLUMNS", 1)
    wide = DataSet("wide", [ParamSpec(f"w{k}", np.float64) for k in range(SHARED_WIDTH + 1)],
                   store=store)
    wide.add_result(**{f"w{k}": float(k) for k in range(SHARED_WIDTH + 1)})
    wide.flush()
    small = DataSet("small", [ParamSpec("q", np.float64)], store=store)
    small.add_result(q=2.0)
    small.flush()
    assert placement(store, small.id)[0] != placement(store, wide.id)[0]
    assert small.get_data("q")[0].tolist() == [2.0]
