"""Run numbers, experiment/sample groups, lookup by number or id prefix, the
runs() filters and revision 0008, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

import qdataset
from qdataset import (
    AmbiguousRunError,
    DataSet,
    InvalidArgumentError,
    ParamSpec,
    RunNotFoundError,
    ValueTypeError,
)
from qdataset.store.migrate import _upgrade, head_revision

X = ParamSpec("x", np.float64)


def test_numbers_count_up_from_one_and_show_everywhere(store):
    made = [DataSet(f"r{i}", [X], store=store) for i in range(3)]
    assert [ds.number for ds in made] == [1, 2, 3]
    assert [r.number for r in store.runs()] == [3, 2, 1]  # newest first
    for ds in made:
        view = store.read_dataset(ds.number)
        assert view.id == ds.id and view.number == ds.number
    assert store.read_dataset(np.int64(2)).id == made[1].id


def test_groups_are_kept_and_listed(store):
    ds = DataSet("sweep", [X], store=store, experiment="cooldown-3", sample="S1")
    plain = DataSet("plain", [X], store=store)
    assert (ds.experiment, ds.sample) == ("cooldown-3", "S1")
    assert (plain.experiment, plain.sample) == (None, None)
    info = {r.id: r for r in store.runs()}
    assert (info[ds.id].experiment, info[ds.id].sample, info[ds.id].number) == \
        ("cooldown-3", "S1", 1)
    assert (info[plain.id].experiment, info[plain.id].sample) == (None, None)
    view = store.read_dataset(ds.id)
    assert (view.experiment, view.sample, view.number) == ("cooldown-3", "S1", 1)


@pytest.mark.parametrize("bad", ["", 3, b"S1"])
def test_group_names_must_be_text(store, bad):
    with pytest.raises(ValueTypeError, match="sample"):
        DataSet("r", [X], store=store, sample=bad)
    assert store.runs() == []


def test_overlong_group_name_is_refused_before_anything_exists(store):
    with pytest.raises(InvalidArgumentError, match="experiment name"):
        DataSet("r", [X], store=store, experiment="e" * 256)
    assert store.runs() == []


def test_lookup_by_exact_id_unique_prefix_and_number(store):
    a = DataSet("alpha", [X], store=store)
    b = DataSet("beta", [X], store=store)
    assert store.read_dataset(a.id).id == a.id
    # Everything up to the name differs only after the shared timestamp prefix.
    assert store.read_dataset(a.id[:-3]).id == a.id
    assert store.read_dataset(b.id[: len(b.id) - 9]).id == b.id  # "...-beta"
    with pytest.raises(AmbiguousRunError) as caught:
        store.read_dataset(a.id[:8])  # the date: both runs start with it
    message = str(caught.value)
    assert a.id in message and b.id in message and "number" in message
    assert isinstance(caught.value, RunNotFoundError)  # "no single run" for lookups
    with pytest.raises(RunNotFoundError, match="number 7"):
        store.read_dataset(7)
    with pytest.raises(RunNotFoundError, match="starts"):
        store.read_dataset("19990101")
    # Prefixes are case-sensitive and literal (no LIKE wildcards) on every engine.
    with pytest.raises(RunNotFoundError):
        store.read_dataset(a.id[:16] + "ALPHA")
    with pytest.raises(RunNotFoundError):
        store.read_dataset(a.id[:16] + "%")
    with pytest.raises(RunNotFoundError):
        store.read_dataset(a.id[:16] + "_lpha")


@pytest.mark.parametrize("bad", [True, 1.0, None, ""])
def test_lookup_keys_of_other_types_are_refused(store, bad):
    DataSet("r", [X], store=store)
    with pytest.raises(InvalidArgumentError):
        store.read_dataset(bad)


def test_many_matches_are_listed_with_a_limit(store):
    made = [DataSet("same", [X], store=store).id for _ in range(12)]
    with pytest.raises(AmbiguousRunError) as caught:
        store.read_dataset(made[0][:8])
    listed = [i for i in made if i in str(caught.value)]
    assert len(listed) == 10 and "and more" in str(caught.value)


def test_runs_filters_combine(store):
    t0 = time.time()
    a = DataSet("a", [X], store=store, experiment="cd3", sample="S1")
    a.add_metadata("operator", "alice")
    a.add_metadata("gate", {"v": 1.5, "on": True})
    time.sleep(0.02)
    middle = time.time()
    time.sleep(0.02)
    b = DataSet("b", [X], store=store, experiment="cd3", sample="S2")
    b.add_metadata("operator", "bob")
    c = DataSet("c", [X], store=store, experiment="cd4", sample="S1")
    c.mark_completed()

    def ids(**filters):
        return [r.id for r in store.runs(**filters)]

    assert ids(experiment="cd3") == [b.id, a.id]
    assert ids(sample="S1") == [c.id, a.id]
    assert ids(experiment="cd3", sample="S1") == [a.id]
    assert ids(experiment="nope") == []
    assert ids(since=middle) == [c.id, b.id]
    assert ids(until=middle) == [a.id]
    assert ids(since=datetime.fromtimestamp(middle, tz=UTC)) == [c.id, b.id]
    assert ids(since=t0 - 1, until=datetime.fromtimestamp(t0 + 3600, tz=UTC)) == \
        [c.id, b.id, a.id]
    assert ids(since=(datetime.now() - timedelta(days=1)).date()) == [c.id, b.id, a.id]
    assert ids(metadata={"operator": "alice"}) == [a.id]
    assert ids(metadata={"operator": "bob"}, experiment="cd3") == [b.id]
    assert ids(metadata={"operator": "bob"}, experiment="cd4") == []
    assert ids(metadata={"gate": {"v": 1.5, "on": True}}) == [a.id]
    assert ids(metadata={"gate": {"v": 1.5}}) == []
    assert ids(metadata={"operator": "alice", "gate": {"v": 1.5, "on": True}}) == [a.id]
    assert ids(experiment="cd4", completed=True) == [c.id]
    assert ids(experiment="cd4", completed=False) == []
    with pytest.raises(InvalidArgumentError, match="since"):
        store.runs(since="yesterday")
    with pytest.raises(InvalidArgumentError, match="metadata"):
        store.runs(metadata=[("operator", "alice")])


def test_filters_are_backed_by_indexes(sqlite_store):
    DataSet("a", [X], store=sqlite_store, experiment="e", sample="s")
    with sqlite_store.reading() as conn:
        indexes = {i["name"]: (i["column_names"], bool(i["unique"]))
                   for i in sa.inspect(conn).get_indexes("runs")}
        meta_indexes = {i["name"]: i["column_names"]
                        for i in sa.inspect(conn).get_indexes("run_metadata")}

        def plan(where: str) -> str:
            return " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN SELECT * FROM runs WHERE {where} "
                "ORDER BY created_at DESC"))

        assert "ix_runs_experiment" in plan("experiment = 'e'")
        assert "ix_runs_sample" in plan("sample = 's'")
        assert "ix_runs_created_at" in plan("created_at >= 5")
        assert "ix_run_metadata_tag" in " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT run_pk FROM run_metadata WHERE tag = 't' AND value = '1'"))
    assert indexes["ux_runs_number"] == (["number"], True)
    assert indexes["ix_runs_experiment"] == (["experiment", "created_at"], False)
    assert indexes["ix_runs_sample"] == (["sample", "created_at"], False)
    assert meta_indexes["ix_run_metadata_tag"] == ["tag", "run_pk"]


def test_concurrent_creators_never_share_a_number(store_url):
    """Eight threads, each with its own store (engine), create runs at once."""
    stores = [qdataset.connect(store_url) for _ in range(8)]
    numbers: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def create(store):
        try:
            start.wait()
            for i in range(5):
                numbers.append(DataSet(f"c{i}", [X], store=store).number)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert not errors, errors
    assert sorted(numbers) == list(range(1, 41))


def test_import_keeps_a_free_number_and_takes_the_next_when_taken(store):
    first = DataSet("first", [X], store=store)
    col = np.array([1.0, 2.0])
    got = store.import_run("imported-7", "imp", 1.0e9, [X], [col], 2, {}, 1.0e9 + 1, number=7,
                           experiment="qc-exp", sample="qc-sample")
    assert got == 7
    clash = store.import_run("imported-again", "imp", 1.0e9, [X], [col], 2, {}, None,
                             number=first.number)
    assert clash == 8  # the highest number + 1
    assert DataSet("next", [X], store=store).number == 9
    info = {r.id: r for r in store.runs()}
    assert (info["imported-7"].number, info["imported-7"].experiment,
            info["imported-7"].sample) == (7, "qc-exp", "qc-sample")
    assert store.read_dataset(7).get_data("x")[0].tolist() == [1.0, 2.0]
    # An imported incomplete run has no writer: it can be continued at once.
    resumed = store.resume_dataset("imported-again")
    resumed.add_result(x=3.0)
    resumed.mark_completed()
    assert store.read_dataset(8).get_data("x")[0].tolist() == [1.0, 2.0, 3.0]


def test_copies_keep_groups_and_their_number_where_free(store, tmp_path):
    with qdataset.connect(f"sqlite:///{tmp_path / 'other.db'}") as other:
        for i in range(3):
            DataSet(f"o{i}", [X], store=other)
        src = DataSet("src", [X], store=other, experiment="e", sample="s")  # number 4
        src.add_result(x=1.0)
        src.mark_completed()
        taken = DataSet("taken", [X], store=other)  # number 5
        DataSet("here", [X], store=store)  # number 1 in the target
        copied = store.write_dataset(src)
        assert (copied.number, copied.experiment, copied.sample) == (4, "e", "s")
        DataSet("here2", [X], store=store)  # number 5 in the target: taken
        taken.mark_completed()
        assert store.write_dataset(taken).number == 6


# -- revision 0008 ------------------------------------------------------------------------


def _columns(engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("runs")}


def test_revision_0008_numbers_old_runs_in_creation_order(bare_engine):
    _upgrade(bare_engine, "0007")
    # pk order differs from creation order; two runs share a creation time.
    created = {1: 300.0, 2: 100.0, 3: 200.0, 4: 100.0, 5: 50.0}
    with bare_engine.begin() as conn:
        for pk, at in created.items():
            conn.execute(sa.text(
                "INSERT INTO runs (pk, run_id, name, created_at, length, results_table) "
                "VALUES (:pk, :id, 'old', :at, 0, 'results_l1')"),
                {"pk": pk, "id": f"old-{pk}", "at": at})
        conn.execute(sa.text("INSERT INTO run_metadata (run_pk, tag, value) "
                             "VALUES (2, 'operator', '\"alice\"')"))
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT setval('runs_pk_seq', 5)")
    _upgrade(bare_engine, "head")
    assert head_revision() >= "0008"
    with bare_engine.connect() as conn:
        numbers = dict(conn.execute(sa.text("SELECT run_id, number FROM runs")).all())
        groups = conn.execute(sa.text("SELECT experiment, sample FROM runs")).all()
    assert numbers == {"old-5": 1, "old-2": 2, "old-4": 3, "old-3": 4, "old-1": 5}
    assert set(groups) == {(None, None)}
    url = bare_engine.url.render_as_string(hide_password=False)
    with qdataset.connect(url) as store:
        assert store.read_dataset(3).id == "old-4"
        assert [r.id for r in store.runs(metadata={"operator": "alice"})] == ["old-2"]
        # the unique index is there: a duplicate number is refused by the database
        with pytest.raises(qdataset.QDatasetError), store.transaction() as conn:
            conn.execute(sa.text("UPDATE runs SET number = 1 WHERE run_id = 'old-1'"))


def test_revision_0008_downgrades_and_upgrades_again(bare_engine):
    _upgrade(bare_engine, "head")
    assert {"number", "experiment", "sample"} <= _columns(bare_engine)
    from alembic import command
    from alembic.config import Config

    from qdataset.store.migrate import migrations_dir

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with bare_engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert not {"number", "experiment", "sample"} & _columns(bare_engine)
    index_names = {i["name"] for i in sa.inspect(bare_engine).get_indexes("runs")}
    assert "ux_runs_number" not in index_names and "ix_runs_created_at" in index_names
    _upgrade(bare_engine, "head")
    assert {"number", "experiment", "sample"} <= _columns(bare_engine)
