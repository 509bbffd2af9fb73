"""plot_dataset: what is drawn for each kind of run (Agg backend, no display)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qdataset import DataSet, InvalidArgumentError, ParamSpec
from qdataset.demo import run_demo

matplotlib = pytest.importorskip("matplotlib", reason="plot_dataset needs matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402

from qdataset.plotting import plot_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_demo_sweep_is_a_heatmap_over_both_gates(sqlite_store):
    ds = run_demo(sqlite_store, points=6, progress=False)
    (ax,) = plot_dataset(ds)
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1 and not ax.lines
    gate1, gate2, g = ds.get_data("gate1", "gate2", "conductance")
    image = meshes[0].get_array().reshape(6, 6)   # rows: gate2, columns: gate1
    np.testing.assert_allclose(image, g.reshape(6, 6).T)
    assert ax.get_xlabel() == "Gate 1 (V)" and ax.get_ylabel() == "Gate 2 (V)"
    colorbar = meshes[0].colorbar
    assert colorbar is not None and colorbar.ax.get_ylabel() == "G (e^2/h)"
    assert ds.id in ax.get_title()


def test_one_setpoint_is_a_line_in_setpoint_order(sqlite_store):
    specs = [ParamSpec("f", np.float64, role="setpoint", unit="Hz", label="frequency"),
             ParamSpec("amp", np.float64, depends_on=["f"], unit="V"),
             ParamSpec("n", np.int64, depends_on=["f"], optional=True)]
    f = np.array([3.0, 1.0, 2.0])
    ds = DataSet("line", specs, store=sqlite_store)
    for i, value in enumerate(f):
        ds.add_result(f=value, amp=value * 10, n=None if i == 0 else i)
    amp_ax, n_ax = plot_dataset(ds)
    (line,) = amp_ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(line.get_ydata(), [10.0, 20.0, 30.0])
    assert (amp_ax.get_xlabel(), amp_ax.get_ylabel()) == ("frequency (Hz)", "amp (V)")
    np.testing.assert_array_equal(n_ax.lines[0].get_ydata(), [1.0, 2.0, np.nan])  # missing: gap
    assert amp_ax.figure is n_ax.figure


def test_points_off_a_grid_are_coloured_points(sqlite_store):
    specs = [ParamSpec("a", np.float64, role="setpoint"),
             ParamSpec("b", np.float64, role="setpoint"),
             ParamSpec("z", np.complex128, depends_on=["a", "b"], label="S21")]
    rng = np.random.default_rng(2)
    a, b, z = rng.random(8), rng.random(8), rng.random(8) * 1j + 3
    (ax,) = plot_dataset(DataSet("scatter", specs, [a, b, z], store=sqlite_store))
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_array_equal(points.get_offsets(), np.column_stack([a, b]))
    np.testing.assert_allclose(points.get_array(), np.abs(z))
    assert points.colorbar.ax.get_ylabel() == "|S21|"


def test_a_partly_swept_grid_is_an_image_with_empty_cells(sqlite_store):
    specs = [ParamSpec("a", np.float64, role="setpoint"),
             ParamSpec("b", np.float64, role="setpoint"),
             ParamSpec("z", np.float64, depends_on=["a", "b"])]
    aa, bb = (g.ravel() for g in np.meshgrid([0.0, 1.0, 2.0], [5.0, 6.0], indexing="ij"))
    ds = DataSet("stopped", specs, [aa[:5], bb[:5], np.arange(5.0)], store=sqlite_store)
    (ax,) = plot_dataset(ds)
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    image = np.ma.filled(mesh.get_array().reshape(2, 3).astype(float), np.nan)
    np.testing.assert_array_equal(image, [[0, 2, 4], [1, 3, np.nan]])


def test_array_parameter_is_an_image_of_its_traces(sqlite_store):
    specs = [ParamSpec("power", np.float64, role="setpoint", unit="dBm"),
             ParamSpec("freq", np.float64, shape=(4,), role="setpoint", unit="Hz"),
             ParamSpec("mag", np.float64, shape=(4,), depends_on=["power", "freq"]),
             ParamSpec("note", str)]
    ds = DataSet("spectra", specs, store=sqlite_store)
    for p in (0.0, -10.0):
        ds.add_result(power=p, freq=np.arange(4) * 1e6, mag=np.arange(4) + p, note="x")
    (ax,) = plot_dataset(ds)                  # the text parameter is left out
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_array_equal(mesh.get_array().reshape(2, 4),
                                  [np.arange(4) - 10.0, np.arange(4.0)])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("freq (Hz)", "power (dBm)")
    x_lo, x_hi = ax.get_xlim()
    assert x_lo < 0 and 3e6 < x_hi < 4e6    # across: the frequencies, not element numbers


def test_no_setpoints_plots_against_index_and_given_axes_are_used(sqlite_store):
    ds = DataSet("plain", [ParamSpec("v", np.int32)], [[5, 7, 6]], store=sqlite_store)
    fig, mine = plt.subplots()
    (ax,) = plot_dataset(ds, axes=[mine])
    assert ax is mine and ax.get_xlabel() == "index"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [5, 7, 6])


def test_a_run_without_numbers_is_refused_by_name(sqlite_store):
    ds = DataSet("words", [ParamSpec("w", str)], [["a"]], store=sqlite_store)
    with pytest.raises(InvalidArgumentError, match="no numeric parameter") as info:
        plot_dataset(ds)
    assert ds.id in str(info.value) and "get_data" in str(info.value)


def test_importing_qdataset_does_not_import_matplotlib():
    code = "import qdataset, qdataset.plotting, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
