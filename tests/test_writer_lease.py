"""One writer per run, in one process: views refuse writes, resume_dataset takes over a
run whose writer is gone, a writer that lost its lease keeps its rows, and close()
rescues rows it cannot write (the multi-process versions: test_writer_processes.py)."""

from __future__ import annotations

import gc
import re
import time

import numpy as np
import pytest
import sqlalchemy as sa

import qdataset
from qdataset import (
    CompletedError,
    DataSet,
    FlushError,
    ParamSpec,
    WriterActiveError,
)

SPECS = [ParamSpec("x", np.float64)]


def set_writer(store, run_id, **values):
    """Change the recorded writer behind qdataset's back (another host, a crash...)."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE runs SET {sets} WHERE run_id = :run_id"),
                     {**values, "run_id": run_id})


def stored_x(store, run_id):
    with qdataset.connect(store.url) as other:
        return other.read_dataset(run_id).get_data("x")[0].tolist()


def test_a_view_refuses_every_write_and_names_the_writer(store):
    ds = DataSet("owned", SPECS + [ParamSpec("y", np.float64, optional=True)], store=store)
    ds.add_result(x=1.0)
    ds.flush()
    view = store.read_dataset(ds.id)  # same process, same store: still only a view
    attempts = [lambda: view.add_result(x=2.0), lambda: view.add_results([{"x": 2.0}]),
                lambda: view.add_results({"x": [2.0]}), lambda: view.modify_result(0, x=5.0),
                lambda: view.add_parameter(ParamSpec("z", np.float64)),
                lambda: view.add_parameter_values(ParamSpec("w", np.float64), [1.0]),
                view.mark_completed, lambda: store.resume_dataset(ds.id)]
    for attempt in attempts:
        with pytest.raises(WriterActiveError, match=rf"pid {__import__('os').getpid()}"):
            attempt()
    assert stored_x(store, ds.id) == [1.0]
    assert [s.name for s in view.get_parameters()] == ["x", "y"]
    view.add_metadata("note", "views may annotate")  # metadata is not results
    ds.add_result(x=2.0)
    ds.mark_completed()
    assert view.get_data("x")[0].tolist() == [1.0, 2.0]
    with pytest.raises(CompletedError):  # a completed run says so, not "writer active"
        view.add_result(x=3.0)


def test_closing_the_writers_store_lets_another_resume_at_the_next_index(store_url):
    first = qdataset.connect(store_url)
    ds = DataSet("handover", SPECS, store=first)
    ds.add_results({"x": [0.0, 1.0, 2.0]})
    first.close()
    with qdataset.connect(store_url) as second:
        resumed = second.resume_dataset(ds.id)
        assert resumed.length == 3
        assert resumed.add_result(x=3.0) == 3
        with pytest.raises(WriterActiveError):  # one writer at a time
            second.resume_dataset(ds.id)
        resumed.mark_completed()
        with pytest.raises(CompletedError, match="cannot be resumed"):
            second.resume_dataset(ds.id)
        assert second.read_dataset(ds.id).get_data("x")[0].tolist() == [0, 1, 2, 3]


def test_a_writer_dropped_without_completing_frees_its_run(store_url):
    store = qdataset.connect(store_url, lease_timeout=0.3)
    try:
        run_id = DataSet("forgotten", SPECS, store=store).id  # the DataSet is dropped
        gc.collect()
        deadline = time.monotonic() + 10  # the lease keeper notices within a renewal
        while True:
            try:
                resumed = store.resume_dataset(run_id)
                break
            except WriterActiveError:
                assert time.monotonic() < deadline, "the dropped writer's lease was kept"
                time.sleep(0.05)
        assert resumed.add_result(x=1.0) == 0
        resumed.mark_completed()
    finally:
        store.close()


def test_a_writer_on_another_host_is_gone_once_its_lease_ran_out(store_url, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a PostgreSQL store's rescue file goes
    store = qdataset.connect(store_url)
    ds = DataSet("remote", SPECS, store=store)
    ds.add_result(x=1.0)
    ds.flush()
    # As if it were written from another machine that renewed a minute ago ...
    set_writer(store, ds.id, writer_host="elsewhere", writer_expires_at=time.time() + 60)
    with pytest.raises(WriterActiveError, match="elsewhere"):
        store.resume_dataset(ds.id)
    # ... and one whose last renewal ran out.
    set_writer(store, ds.id, writer_expires_at=time.time() - 1)
    view = store.read_dataset(ds.id)
    with pytest.raises(WriterActiveError, match="stopped renewing"):
        view.add_result(x=2.0)  # still a view: it says how to take over
    resumed = store.resume_dataset(ds.id)
    resumed.add_result(x=2.0)
    resumed.flush()
    # The original writer lost the run: its next flush is refused by the database,
    # its rows stay with it, and it never writes into the new owner's range.
    ds.add_result(x=99.0)
    with pytest.raises(WriterActiveError, match="no longer holds"):
        ds.flush()
    with pytest.raises(WriterActiveError):
        ds.add_result(x=100.0)
    assert ds.unwritten_results()["x"].tolist() == [99.0]
    assert stored_x(store, ds.id) == [1.0, 2.0]
    resumed.mark_completed()
    with pytest.raises(FlushError, match="1 results .* rescue file"):
        store.close()  # the lost writer's row is not dropped silently


def test_close_rescues_rows_it_cannot_write_and_they_load_back_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    store = qdataset.connect(url)
    ds = DataSet("rescued", SPECS, store=store)
    ds.add_results({"x": [0.0, 1.0]})
    set_writer(store, ds.id, writer_token="00")  # the lease is gone behind its back
    ds.add_result(x=2.0)
    ds.add_result(x=3.0)
    with pytest.raises(FlushError, match="rescue file") as raised:
        store.close()
    path = re.search(r"rescue file '([^']+)'", str(raised.value)).group(1)
    assert path.startswith(str(tmp_path))  # beside the database
    with qdataset.connect(path, create=False) as rescue:  # an ordinary store
        assert rescue.read_dataset(ds.id).get_data("x")[0].tolist() == [2.0, 3.0]
    with qdataset.connect(url) as again:
        set_writer(again, ds.id, writer_token=None)  # that "other writer" went away
        (loaded,) = again.load_rescue(path)
        assert (loaded.count, loaded.first_index) == (2, 2)
        assert again.load_rescue(path)[0].count == 0  # a second load adds nothing
        assert again.read_dataset(ds.id).get_data("x")[0].tolist() == [0, 1, 2, 3]


def test_rescue_into_a_completed_run_is_refused_and_keeps_the_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    store = qdataset.connect(url)
    ds = DataSet("late", SPECS, store=store)
    set_writer(store, ds.id, writer_token="00")
    ds.add_result(x=1.0)
    with pytest.raises(FlushError, match="rescue file") as raised:
        store.close()
    path = re.search(r"rescue file '([^']+)'", str(raised.value)).group(1)
    with qdataset.connect(url) as again:
        set_writer(again, ds.id, writer_token=None, completed_at=time.time())
        with pytest.raises(CompletedError, match="stay readable in the rescue file"):
            again.load_rescue(path)
    with qdataset.connect(path, create=False) as rescue:
        assert rescue.read_dataset(ds.id).get_data("x")[0].tolist() == [1.0]


def test_a_retried_batch_that_was_already_committed_is_not_stored_twice(store):
    """A lost acknowledgement (the commit went through, the client never heard): the
    retry finds the run already at its new length and stores nothing again."""
    handle = store.create_run("20261201-000000-ack-00000000", "ack", time.time(), SPECS)
    handle.insert_rows(["x"], [[0, 1.0], [1, 2.0]], 2)
    handle.insert_rows(["x"], [[0, 1.0], [1, 2.0]], 2)  # the same batch again
    assert handle.state()[0] == 2
    assert stored_x(store, handle.id) == [1.0, 2.0]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_rows_a_crashed_server_lost_are_written_again(store_url):
    """PostgreSQL commits row appends asynchronously; if the server loses the last
    of them, the writer still has them (for a few seconds) and writes them again."""
    with qdataset.connect(store_url, flush_interval=60) as store:
        ds = DataSet("async", SPECS, store=store)
        for i in range(3):
            ds.add_result(x=float(i))
        ds.flush()
        # What a crash inside the async-commit window leaves: the last commit undone.
        with store.engine.begin() as conn:
            table, pk = conn.execute(sa.text("SELECT results_table, pk FROM runs WHERE "
                                             "run_id = :i"), {"i": ds.id}).one()
            conn.execute(sa.text(f'DELETE FROM "{table}" WHERE "_qd_run" = :pk'), {"pk": pk})
            conn.execute(sa.text("UPDATE runs SET length = 0 WHERE pk = :pk"), {"pk": pk})
        ds.add_result(x=3.0)
        ds.flush()
        assert stored_x(store, ds.id) == [0.0, 1.0, 2.0, 3.0]


def test_runs_whose_writer_is_gone_are_listed_as_interrupted(store_url, capsys):
    from qdataset.cli import main

    first = qdataset.connect(store_url)
    left = DataSet("left", SPECS, store=first)
    left.add_result(x=1.0)
    first.close()  # its writer is gone: resumable
    with qdataset.connect(store_url) as store:
        live = DataSet("live", SPECS, store=store)
        done = DataSet("done", SPECS, store=store)
        done.mark_completed()
        states = {run.name: run.state for run in store.runs()}
        assert states == {"left": "interrupted", "live": "running", "done": "completed"}
        assert main(["runs", "--url", store_url, "--state", "interrupted", "--json"]) == 0
        listed = [line for line in capsys.readouterr().out.splitlines() if line]
        assert len(listed) == 1 and left.id in listed[0]
        store.resume_dataset(left.id).mark_completed()
        assert {run.name: run.state for run in store.runs()}["left"] == "completed"
        live.mark_completed()


def test_a_rescue_load_that_fails_part_way_adds_each_row_once_when_retried(tmp_path):
    """More rescued rows than one read chunk: loading them is one transaction, so a
    failure part-way adds nothing and loading again adds every row exactly once."""
    from faults import failing_write_number

    from qdataset.store.reader import CHUNK_ROWS

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    store = qdataset.connect(url, flush_interval=60)
    ds = DataSet("many", SPECS, store=store)
    set_writer(store, ds.id, writer_token="00")  # the lease is gone behind its back
    count = CHUNK_ROWS + 5_000
    for i in range(count):
        ds.add_result(x=float(i))
    with pytest.raises(FlushError, match="rescue file") as raised:
        store.close()
    path = re.search(r"rescue file '([^']+)'", str(raised.value)).group(1)
    with qdataset.connect(url) as again:
        set_writer(again, ds.id, writer_token=None)
        try:  # writes: 1 takes the lease, 2 and on store rows; the third fails
            with failing_write_number(again, 3):
                again.load_rescue(path)
        except qdataset.QDatasetError:
            pass
        again.load_rescue(path)
        stored = again.read_dataset(ds.id).get_data("x")[0]
    np.testing.assert_array_equal(stored, np.arange(count, dtype=float))
