"""qdataset.web without a browser: plot choice, decimation, grids, shared followers, CLI."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import wait_until

pytest.importorskip("bokeh", reason="qdataset serve needs the 'web' extra")

import qdataset  # noqa: E402
from qdataset import DataSet, ParamSpec  # noqa: E402
from qdataset.cli import main  # noqa: E402
from qdataset.web import follow  # noqa: E402
from qdataset.web.columns import Columns  # noqa: E402
from qdataset.web.decimate import index_sample, minmax_columns, shrink_image  # noqa: E402
from qdataset.web.follow import RunHub, RunListWatcher  # noqa: E402
from qdataset.web.grid import binned_image, grid_image  # noqa: E402
from qdataset.web.plan import axis_title, plan_plots  # noqa: E402
from qdataset.web.plots import make_plot  # noqa: E402
from qdataset.web.runlist import run_page_path, runs_table  # noqa: E402
from qdataset.web.server import allowed_origins  # noqa: E402

X = ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate")
X2 = ParamSpec("x2", np.float64, role="setpoint", unit="V", label="plunger")
FREQ = ParamSpec("f", np.float64, role="setpoint", shape=(8,), unit="Hz", label="frequency")


def test_minmax_columns_keep_the_envelope_of_a_million_points():
    x = np.arange(1_000_000, dtype=np.float64)
    y = np.sin(x / 1000.0)
    y[123_456] = 5.0  # a single spike must survive decimation
    xs, ys = minmax_columns(x, y, columns=1000)
    assert len(xs) == len(ys) == 2000
    assert ys.max() == 5.0 and ys.min() == pytest.approx(-1.0, abs=1e-6)
    assert np.all(np.diff(xs) >= 0)


def test_minmax_columns_edge_cases():
    assert [len(a) for a in minmax_columns(np.empty(0), np.empty(0))] == [0, 0]
    xs, ys = minmax_columns(np.ones(5), np.array([3.0, 1.0, np.nan, 2.0, 4.0]))
    assert list(xs) == [1.0, 1.0] and list(ys) == [1.0, 4.0]


def test_index_sample_and_shrink_image():
    assert list(index_sample(5, 10)) == [0, 1, 2, 3, 4]
    picked = index_sample(10_000, 100)
    assert len(picked) == 100 and picked[0] == 0 and picked[-1] == 9999
    image, shrunk = shrink_image(np.zeros((3000, 20)), 1000)
    assert image.shape == (1000, 20) and shrunk


def test_a_raster_sweep_being_written_is_a_grid():
    g1, g2 = np.meshgrid(np.linspace(0, 1, 7), np.linspace(-1, 1, 5), indexing="ij")
    x, y = g1.ravel(), g2.ravel()
    z = x + 10 * y
    half = grid_image(x[:17], y[:17], z[:17])  # three lines and a bit of the fourth
    assert half is not None and half.image.shape == (5, 4)
    full = grid_image(x, y, z)
    assert full is not None and full.image.shape == (5, 7)
    assert full.image[0, 0] == pytest.approx(-10.0) and full.image[4, 6] == pytest.approx(11.0)
    assert full.x0 == pytest.approx(-1 / 12) and full.dw == pytest.approx(7 / 6)


def test_scattered_points_are_no_grid_but_can_be_binned():
    rng = np.random.default_rng(3)
    x, y = rng.random(500), rng.random(500)
    assert grid_image(x, y, x * y) is None
    binned = binned_image(x, y, x * y, bins=10)
    assert binned is not None and binned.image.shape == (10, 10) and binned.shrunk


def test_plots_are_chosen_from_the_paramspecs():
    specs = [X, X2, FREQ,
             ParamSpec("y", np.float64, depends_on=["x"], unit="A", label="current"),
             ParamSpec("m", np.float64, depends_on=["x", "x2"]),
             ParamSpec("z", np.complex128, depends_on=["x"], unit="V"),
             ParamSpec("trace", np.float64, shape=(8,), depends_on=["x", "f"]),
             ParamSpec("note", str, depends_on=["x"]),
             ParamSpec("free", np.int64)]
    plans, notes = plan_plots(specs)
    kinds = [(p.kind, p.y.name, p.x and p.x.name, p.x2 and p.x2.name, p.part) for p in plans]
    assert kinds == [("line", "y", "x", None, None), ("map", "m", "x", "x2", None),
                     ("line", "z", "x", None, 0), ("line", "z", "x", None, 1),
                     ("trace", "trace", "f", None, None), ("line", "free", None, None, None)]
    assert len(notes) == 1 and notes[0].startswith("note: ")


def test_axis_titles_carry_label_and_unit():
    assert axis_title(X) == "gate (V)"
    assert axis_title(ParamSpec("n", np.int64)) == "n"
    z = ParamSpec("z", np.complex128, unit="V", label="lock-in")
    assert axis_title(z, "magnitude") == "|lock-in| (V)"
    assert axis_title(z, "phase") == "arg lock-in (rad)"
    assert axis_title(z, "imaginary") == "Im lock-in (V)"
    assert axis_title(None) == "row index"


def test_columns_grow_and_hand_out_stable_views():
    columns = Columns([X, FREQ])
    columns.extend([np.arange(3.0), np.ones((3, 8))])
    first = columns.get("x")
    columns.extend([np.arange(3.0, 3000.0), np.ones((2997, 8))])
    assert list(first) == [0.0, 1.0, 2.0]  # a view taken earlier is unchanged by growth
    assert columns.length == 3000 and columns.get("f", 2990).shape == (10, 8)
    assert list(columns.get("x", 5, 8)) == [5.0, 6.0, 7.0]


def test_a_line_plot_streams_then_decimates():
    plan, = plan_plots([X, ParamSpec("y", np.float64, depends_on=["x"])])[0]
    plot = make_plot(plan, "magnitude/phase")
    columns = Columns([X, plan.y])
    columns.extend([np.arange(10.0), np.arange(10.0)])
    plot.refresh(columns)
    assert len(plot.source.data["x"]) == 10 and plot.notice.text == ""
    columns.extend([np.arange(10.0, 100_000.0), np.zeros(99_990)])
    plot.refresh(columns, final=True)
    assert len(plot.source.data["x"]) <= 2 * 1200
    assert "decimated" in plot.notice.text and "100,000 rows" in plot.notice.text


def test_complex_views_relabel_and_redraw():
    z = ParamSpec("z", np.complex128, depends_on=["x"], unit="V", label="lock-in")
    plans, _ = plan_plots([X, z])
    columns = Columns([X, z])
    columns.extend([np.arange(3.0), np.array([1j, -1, 3 + 4j])])
    plots = [make_plot(plan, "magnitude/phase") for plan in plans]
    for plot in plots:
        plot.refresh(columns)
    assert list(plots[0].source.data["y"]) == [1.0, 1.0, 5.0]
    for plot in plots:
        plot.set_complex_view("real/imaginary", columns)
    assert plots[1].figure.yaxis.axis_label == "Im lock-in (V)"
    assert list(plots[1].source.data["y"]) == [1.0, 0.0, 4.0]


def test_array_parameters_show_the_latest_trace_and_a_waterfall():
    trace = ParamSpec("s", np.float64, shape=(8,), depends_on=["f"], unit="dB")
    plan, = plan_plots([FREQ, trace])[0]
    plot = make_plot(plan, "magnitude/phase")
    columns = Columns([FREQ, trace])
    columns.extend([np.tile(np.linspace(1e9, 2e9, 8), (4, 1)), np.arange(32.0).reshape(4, 8)])
    plot.refresh(columns)
    assert list(plot.trace_source.data["y"]) == list(np.arange(24.0, 32.0))
    assert plot.trace.xaxis.axis_label == "frequency (Hz)"
    assert plot.image_source.data["image"][0].shape == (4, 8)


def test_run_list_table_filters_by_name_and_state(store):
    done = DataSet("cooldown", [X], store=store)
    done.mark_completed()
    DataSet("sweep <b>", [X], store=store).add_result(x=1.0)
    runs = store.runs()
    html = runs_table(runs)
    assert html.index("sweep &lt;b&gt;") < html.index("cooldown")  # newest first, escaped
    assert run_page_path(done.id) in html
    only = runs_table(runs, name="COOL")
    assert "cooldown" in only and "sweep" not in only
    assert "cooldown" not in runs_table(runs, state="running")


def test_the_run_list_is_read_again_only_when_the_store_changed(store, monkeypatch):
    """Listing a big store is slow, so the list page's watcher looks at the store's
    cheap fingerprint and lists the runs again only when it moved."""
    first = DataSet("first", [X], store=store)
    first.add_result(x=1.0)
    first.mark_completed()
    with qdataset.connect(store.url, create=False) as reader:
        listings, looks = [], threading.Event()
        real_runs, real_fingerprint = reader.runs, reader.runs_fingerprint

        def runs(*args, **kwargs):
            listings.append(kwargs)
            return real_runs(*args, **kwargs)

        def fingerprint():
            looks.count = getattr(looks, "count", 0) + 1
            if looks.count >= 30:
                looks.set()
            return real_fingerprint()

        monkeypatch.setattr(reader, "runs", runs)
        monkeypatch.setattr(reader, "runs_fingerprint", fingerprint)
        watcher = RunListWatcher(reader, interval=0.01)
        watcher.add_listener(lambda w: None)
        try:
            assert wait_until(lambda: len(watcher.runs) == 1)
            assert looks.wait(30)  # thirty looks at a store where nothing happened...
            assert listings == [{}]  # ...and still the one first listing
            second = DataSet("second", [X], store=store)
            assert wait_until(lambda: [r.name for r in watcher.runs] == ["second", "first"])
            second.add_results({"x": np.arange(3.0)})
            second.flush()
            assert wait_until(lambda: watcher.runs[0].length == 3)
            second.mark_completed()
            assert wait_until(lambda: watcher.runs[0].state == "completed")
            second.add_metadata("error", {"type": "Quench", "message": "magnet"})
            assert wait_until(lambda: watcher.runs[0].state == "failed")
        finally:
            watcher.close()


def test_the_run_list_sees_a_writer_go_without_a_write(store, monkeypatch):
    """A writer that dies changes nothing in the store: the watcher still shows its
    run as interrupted, by looking at the incomplete runs every WRITER_CHECK_S."""
    monkeypatch.setattr(follow, "WRITER_CHECK_S", 0.05)
    with qdataset.connect(store.url) as writing:
        ds = DataSet("abandoned", [X], store=writing)
        ds.add_result(x=1.0)
        ds.flush()
        with qdataset.connect(store.url, create=False) as reader:
            watcher = RunListWatcher(reader, interval=0.01)
            watcher.add_listener(lambda w: None)
            try:
                assert wait_until(lambda: [r.state for r in watcher.runs] == ["running"])
                real = reader.runs_fingerprint
                # Pretend the store's fingerprint never moves, as when a writer dies.
                frozen = real()
                monkeypatch.setattr(reader, "runs_fingerprint", lambda: frozen)
                writing.close()
                assert wait_until(lambda: [r.state for r in watcher.runs] == ["interrupted"])
            finally:
                watcher.close()


def test_one_follower_per_run_however_many_sessions(store):
    """Two sessions on one run share one follower (one subscription); it reads each new
    row once and tells both; the last to leave stops it."""
    ds = DataSet("shared", [X], store=store)
    ds.add_result(x=0.0)
    ds.flush()
    with qdataset.connect(store.url, create=False) as reader:
        hub = RunHub(reader)
        seen: dict[str, list[int]] = {"a": [], "b": []}
        got = {"a": threading.Event(), "b": threading.Event()}

        def listener(key):
            def told(follower):
                seen[key].append(follower.columns.length)
                if follower.columns.length == 3 and follower.completed:
                    got[key].set()
            return told

        a, b = listener("a"), listener("b")
        first = hub.follow(ds.id, a)
        assert first.ready.wait(10)
        second = hub.follow(ds.id, b)
        assert second is first and hub.followed == [ds.id]
        ds.add_results({"x": np.array([1.0, 2.0])})
        ds.mark_completed()
        assert got["a"].wait(10) and got["b"].wait(10)
        assert list(first.columns.get("x")) == [0.0, 1.0, 2.0]
        assert first.state == "completed"
        hub.leave(first, a)
        assert hub.followed == [ds.id]
        hub.leave(first, b)
        assert hub.followed == []
        hub.close()


def test_a_failed_run_is_shown_as_failed(store):
    with pytest.raises(RuntimeError), DataSet("broken", [X], store=store) as ds:
        ds.add_result(x=1.0)
        raise RuntimeError("fridge warmed up")
    with qdataset.connect(store.url, create=False) as reader:
        hub = RunHub(reader)
        follower = hub.follow(ds.id, lambda f: None)
        assert follower.ready.wait(10)
        assert follower.state == "failed" and follower.metadata["error"]["message"]
        hub.close()


def test_a_run_whose_writer_went_away_is_shown_as_interrupted_then_running_again(store):
    """A writer that stops without completing sends nothing: the hub's periodic look
    at the writers turns the page's state to "interrupted", and back to "running"
    once someone resumes the run."""
    with qdataset.connect(store.url) as writing:
        ds = DataSet("abandoned", [X], store=writing)
        ds.add_result(x=1.0)
        ds.flush()
        run_id = ds.id
        with qdataset.connect(store.url, create=False) as reader:
            hub = RunHub(reader, writer_check=0.05)
            states: list[str] = []
            changed = threading.Condition()

            def told(follower):
                with changed:
                    states.append(follower.state)
                    changed.notify_all()

            follower = hub.follow(run_id, told)
            assert follower.ready.wait(10) and follower.state == "running"
            writing.close()  # releases the lease without completing the run

            def wait_for(state):
                with changed:
                    assert changed.wait_for(lambda: states and states[-1] == state, 10), states

            wait_for("interrupted")
            assert reader.run_info(run_id).state == "interrupted"
            with qdataset.connect(store.url) as resuming:
                resumed = resuming.resume_dataset(run_id)
                wait_for("running")
                resumed.add_result(x=2.0)
                resumed.mark_completed()
                wait_for("completed")
            assert list(follower.columns.get("x")) == [1.0, 2.0]
            hub.close()


def test_a_page_opened_on_an_interrupted_run_says_so_at_once(store):
    with qdataset.connect(store.url) as writing:
        ds = DataSet("abandoned", [X], store=writing)
        ds.add_result(x=1.0)
    with qdataset.connect(store.url, create=False) as reader:
        hub = RunHub(reader, writer_check=3600)  # no periodic look: the first read tells
        follower = hub.follow(ds.id, lambda f: None)
        assert follower.ready.wait(10)
        assert follower.state == "interrupted"
        hub.close()


def test_websocket_origins_are_the_served_host_only():
    assert allowed_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert allowed_origins("lab-pc.example.org", 80) == ["lab-pc.example.org:80"]
    assert "localhost:7" in allowed_origins("0.0.0.0", 7)


def test_serve_with_a_bad_url_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nothing-here.db"
    assert main(["serve", "--url", f"sqlite:///{missing}", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qdataset serve: ") and err.count("\n") == 1
    assert not missing.exists()  # reading never creates a store


def test_serve_of_an_unknown_run_is_a_one_line_error(sqlite_store, capsys):
    sqlite_store.close()
    assert main(["serve", "--url", sqlite_store.url, "--run", "no-such-run"]) == 2
    assert capsys.readouterr().err.startswith("qdataset serve: ")


@pytest.mark.slow
def test_live_plot_example_fails_loudly_without_a_display(tmp_path):
    """The example script no longer "shows" nothing and exits 0 on a headless machine."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("matplotlib", reason="the example needs the 'experiment' extra")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    script = Path(__file__).resolve().parents[1] / "examples" / "live_plot.py"
    done = subprocess.run([sys.executable, str(script), "--url", str(tmp_path / "x.db")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "no display" in done.stderr and "--save" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_decimated_picture_is_computed_once_for_all_pages():
    from qdataset.web.columns import Columns

    columns = Columns([ParamSpec("x", np.float64)])
    columns.extend([np.arange(10.0)])
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert columns.memo("k", 10, compute) == 1
    assert columns.memo("k", 10, compute) == 1  # a second page: no new computation
    columns.extend([np.arange(5.0)])
    assert columns.memo("k", 15, compute) == 2  # more rows: computed again
    assert len(calls) == 2
