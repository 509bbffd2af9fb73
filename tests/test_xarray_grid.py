"""to_xarray knows the grid: setpoints as dimensions whatever the sweep order,
partly swept grids, the index fallback, attributes and array dimensions."""

from __future__ import annotations

import numpy as np
import pytest

from qdataset import DataSet, ParamSpec
from qdataset.demo import run_demo
from qdataset.gridding import find_grid

xr = pytest.importorskip("xarray", reason="to_xarray needs the 'netcdf' extra")
from qdataset.netcdf import to_xarray  # noqa: E402

A = np.array([0.0, 0.5, 1.0])
B = np.array([10, 20, 30, 40])


def grid_rows(order: str = "ab", a=A, b=B) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) of the grid, swept with ``order[0]`` outside."""
    if order == "ab":
        aa, bb = np.meshgrid(a, b, indexing="ij")
    else:
        bb, aa = np.meshgrid(b, a, indexing="ij")
    return aa.ravel(), bb.ravel()


def value(a, b):
    return a * 100 + b


@pytest.mark.parametrize("case", ["outer a", "outer b", "descending", "shuffled"])
def test_any_sweep_order_gives_the_same_grid(case):
    a, b = grid_rows("ba" if case == "outer b" else "ab",
                     a=A[::-1] if case == "descending" else A,
                     b=B[::-1] if case == "descending" else B)
    if case == "shuffled":
        perm = np.random.default_rng(3).permutation(len(a))
        a, b = a[perm], b[perm]
    grid = find_grid({"a": a, "b": b})
    assert grid is not None and grid.full and grid.dims == ("a", "b")
    np.testing.assert_array_equal(grid.coords[0], A)  # sorted, whatever the sweep
    np.testing.assert_array_equal(grid.coords[1], B)
    assert grid.coords[1].dtype == B.dtype
    image = grid.fill(value(a, b))
    np.testing.assert_array_equal(image, value(A[:, None], B[None, :]))
    assert image.dtype == np.float64


def test_a_sweep_stopped_in_its_last_row_is_a_grid_with_nan_cells():
    a, b = grid_rows()
    grid = find_grid({"a": a[:6], "b": b[:6]})   # 3 x 4 grid stopped after 6 points
    assert grid is not None and not grid.full
    assert grid.shape == (2, 4)
    image = grid.fill(np.arange(6))              # ints: NaN needs floats
    assert image.dtype == np.float64
    np.testing.assert_array_equal(image, [[0, 1, 2, 3], [4, 5, np.nan, np.nan]])
    # the same, swept downwards and with the inner setpoint first
    a, b = grid_rows("ba", b=B[::-1])            # b outer, from 40 down: 40, 30 (part)
    grid = find_grid({"a": a[:5], "b": b[:5]})
    assert grid.shape == (3, 2)
    np.testing.assert_array_equal(grid.coords[1], [30, 40])
    np.testing.assert_array_equal(grid.fill(np.arange(5.0)), [[3, 0], [4, 1], [np.nan, 2]])


def test_a_three_dimensional_sweep_stopped_part_way():
    c = np.arange(3)
    aa, bb, cc = (g.ravel() for g in np.meshgrid(c, c, c, indexing="ij"))
    grid = find_grid({"a": aa[:13], "b": bb[:13], "c": cc[:13]})
    assert grid is not None and grid.shape == (2, 3, 3)
    assert np.count_nonzero(np.isnan(grid.fill(np.ones(13)))) == 18 - 13


@pytest.mark.parametrize("case", ["hole", "scatter", "repeat", "nan"])
def test_what_is_not_a_grid(case):
    a, b = grid_rows()
    if case == "hole":          # a point missing inside the sweep, not at its end
        a, b = np.delete(a, 5), np.delete(b, 5)
    elif case == "scatter":
        rng = np.random.default_rng(0)
        a, b = rng.random(20), rng.random(20)
    elif case == "repeat":      # the same point measured twice
        a, b = np.append(a, a[0]), np.append(b, b[0])
    else:
        a = a.copy()
        a[2] = np.nan
    assert find_grid({"a": a, "b": b}) is None


def test_demo_sweep_opens_as_a_2d_array_with_labelled_axes(sqlite_store):
    import matplotlib

    matplotlib.use("Agg")
    ds = run_demo(sqlite_store, points=7, progress=False)
    xds = to_xarray(ds)
    g = xds["conductance"]
    assert g.dims == ("gate1", "gate2")
    assert g.shape == (7, 7)
    gate1, gate2, conductance = ds.get_data("gate1", "gate2", "conductance")
    np.testing.assert_array_equal(g.values, conductance.reshape(7, 7))  # demo: gate1 outer
    np.testing.assert_array_equal(xds["gate2"].values, gate2[:7])
    assert xds["gate1"].attrs == {"long_name": "Gate 1", "units": "V"}
    assert g.attrs == {"long_name": "G", "units": "e^2/h"}
    mesh = g.plot()                      # xarray's own plot: an image with titled axes
    assert mesh.axes.get_xlabel() == "Gate 2 [V]" and mesh.axes.get_ylabel() == "Gate 1 [V]"
    assert mesh.get_array().size == 49
    matplotlib.pyplot.close("all")


def test_a_1d_sweep_plots_against_its_setpoint(sqlite_store, xy_specs):
    xs = np.array([0.3, 0.1, 0.2])
    ds = DataSet("line", xy_specs, [xs, xs * 2], store=sqlite_store)
    y = to_xarray(ds)["y"]
    assert y.dims == ("x",)
    np.testing.assert_array_equal(y["x"].values, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(y.values, [0.2, 0.4, 0.6])


def test_points_that_form_no_grid_keep_index_with_setpoints_as_coordinates(sqlite_store):
    specs = [ParamSpec("a", np.float64, role="setpoint", unit="V"),
             ParamSpec("b", np.float64, role="setpoint"),
             ParamSpec("z", np.int64, depends_on=["a", "b"], label="counts")]
    rng = np.random.default_rng(1)
    a, b = rng.random(10), rng.random(10)
    ds = DataSet("scatter", specs, [a, b, np.arange(10)], store=sqlite_store)
    xds = to_xarray(ds)
    assert xds["z"].dims == ("index",)
    assert set(xds.coords) == {"index", "a", "b"}
    np.testing.assert_array_equal(xds["a"].values, a)
    assert xds["z"].dtype == np.int64
    assert xds["z"].attrs == {"long_name": "counts", "units": ""}


def test_missing_values_on_a_partial_grid(sqlite_store):
    specs = [ParamSpec("a", np.float64, role="setpoint"),
             ParamSpec("b", np.int64, role="setpoint"),
             ParamSpec("n", np.int64, optional=True, depends_on=["a", "b"]),
             ParamSpec("s", str, optional=True)]
    ds = DataSet("partial", specs, store=sqlite_store)
    a, b = grid_rows()
    for i in range(7):
        ds.add_result(a=a[i], b=int(b[i]), n=None if i == 1 else i, s=f"p{i}")
    xds = to_xarray(ds)
    assert xds["n"].dims == ("a", "b")
    expected = np.array([[0, np.nan, 2, 3], [4, 5, 6, np.nan]])
    np.testing.assert_array_equal(xds["n"].values, expected)
    assert xds["s"].isnull().values.tolist() == [[False] * 4, [False] * 3 + [True]]
    assert xds["s"].values[0, 0] == "p0"


def test_array_parameters_get_their_own_dimension(sqlite_store):
    freq = ParamSpec("freq", np.float64, shape=(4,), role="setpoint", unit="Hz")
    specs = [ParamSpec("power", np.float64, role="setpoint", unit="dBm"), freq,
             ParamSpec("s21", np.complex128, shape=(4,), depends_on=["power", "freq"]),
             ParamSpec("raw", np.int16, shape=(2, 3))]
    ds = DataSet("spectra", specs, store=sqlite_store)
    for p in (-10.0, -20.0, -30.0):
        ds.add_result(power=p, freq=np.linspace(1e9, 2e9, 4), s21=np.full(4, p + 1j),
                      raw=np.full((2, 3), int(p), dtype=np.int16))
    xds = to_xarray(ds)
    assert xds["s21"].dims == ("power", "freq")
    np.testing.assert_array_equal(xds["freq"].values, np.linspace(1e9, 2e9, 4))
    assert xds["freq"].dims == ("freq",) and xds["freq"].attrs["units"] == "Hz"
    np.testing.assert_array_equal(xds["s21"].sel(power=-20.0).values, np.full(4, -20 + 1j))
    assert xds["raw"].dims == ("power", "raw_dim_0", "raw_dim_1")
    assert xds["raw"].dtype == np.int16


def test_array_setpoint_that_changes_between_rows(sqlite_store):
    t = ParamSpec("t", np.float64, shape=(3,), role="setpoint")
    specs = [t, ParamSpec("v", np.float64, shape=(3,), depends_on=["t"])]
    ds = DataSet("moving axis", specs, store=sqlite_store)
    for i in range(2):
        ds.add_result(t=np.arange(3) + 10 * i, v=np.arange(3) * 1.0)
    xds = to_xarray(ds)
    assert xds["v"].dims == ("index", "t_dim_0")
    assert xds["t"].dims == ("index", "t_dim_0")
    np.testing.assert_array_equal(xds["t"].values[1], [10, 11, 12])


def test_datetime_values_in_xarray(sqlite_store):
    specs = [ParamSpec("when", "datetime64[ms]", role="setpoint"),
             ParamSpec("v", np.float64, depends_on=["when"], unit="K")]
    when = np.datetime64("2026-03-01T12:00:00", "ms") + np.arange(3) * np.timedelta64(1, "s")
    ds = DataSet("times", specs, [when, [1.0, 2.0, 3.0]], store=sqlite_store)
    xds = to_xarray(ds)
    assert xds["v"].dims == ("when",)
    np.testing.assert_array_equal(xds["when"].values.astype("datetime64[ms]"), when)
    assert "units" not in xds["when"].attrs  # xarray keeps its own time units


def test_an_empty_run(sqlite_store, xy_specs):
    xds = to_xarray(DataSet("empty", xy_specs, store=sqlite_store))
    assert xds["y"].dims == ("index",) and xds.sizes["index"] == 0
