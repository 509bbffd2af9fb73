"""Bokeh plots that follow a run: built from a PlotPlan, refreshed from shared columns.

A plot sends the browser only what is new while that is cheap (``stream`` of
the new rows), and switches to a decimated picture (min/max per pixel column,
images of bounded size) when the run is too large, saying so under the plot.
Refresh runs on the Bokeh session's thread, with its document locked.
"""

from __future__ import annotations

import time

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColorBar, ColumnDataSource, Div, LinearColorMapper
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from .columns import Columns
from .decimate import IMAGE_SIDE, STREAM_LIMIT, index_sample, minmax_columns, shrink_image
from .grid import GridImage, binned_image, grid_image
from .plan import COMPLEX_VIEWS, PlotPlan, axis_title

#: Seconds between two full re-sends of a decimated plot or an image.
RESEND_S = 1.0
#: An image larger than this many cells is re-sent at most once a second.
LARGE_IMAGE = 200_000

_TRANSPARENT = (0, 0, 0, 0)


def _figure(x_title: str, y_title: str, title: str):
    fig = figure(title=title, x_axis_label=x_title, y_axis_label=y_title, height=330,
                 sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save")
    return fig


def _mapper() -> LinearColorMapper:
    return LinearColorMapper(palette=Viridis256, nan_color=_TRANSPARENT)


def _set_range(mapper: LinearColorMapper, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if len(finite):
        low, high = float(finite.min()), float(finite.max())
        mapper.low, mapper.high = low, high if high > low else low + 1.0


def _image_data(grid: GridImage) -> dict:
    return {"image": [grid.image], "x": [grid.x0], "y": [grid.y0], "dw": [grid.dw],
            "dh": [grid.dh]}


_EMPTY_IMAGE = {"image": [], "x": [], "y": [], "dw": [], "dh": []}


class LivePlot:
    """Base of the plots: a Bokeh layout (:attr:`model`) and a notice line below it."""

    def __init__(self, plan: PlotPlan, complex_view: str) -> None:
        self.plan = plan
        self.complex_view = complex_view
        self.notice = Div(text="", css_classes=["qd-notice"],
                          styles={"color": "#8a6d00", "font-style": "italic"})
        self.sent = 0  # rows already in the browser (streamed plots)
        self.sent_at = 0.0
        self.model = column(*self._build(), self.notice, sizing_mode="stretch_width")

    # -- what the values and axes are -------------------------------------------------------
    @property
    def part_name(self) -> str | None:
        if self.plan.part is None:
            return None
        return COMPLEX_VIEWS[self.complex_view][self.plan.part][0]

    def values(self, columns: Columns, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The plotted (real) values of the dependent, rows ``start:stop``."""
        raw = columns.get(self.plan.y.name, start, stop)
        if self.plan.part is not None:
            raw = COMPLEX_VIEWS[self.complex_view][self.plan.part][1](raw)
        return np.asarray(raw, dtype=np.float64)

    def setpoint(self, columns: Columns, spec, start: int = 0, stop: int | None = None
                 ) -> np.ndarray:
        if spec is None:  # the row index
            stop = columns.length if stop is None else min(stop, columns.length)
            return np.arange(start, stop, dtype=np.float64)
        return np.asarray(columns.get(spec.name, start, stop), dtype=np.float64)

    @property
    def y_title(self) -> str:
        return axis_title(self.plan.y, self.part_name)

    def due(self, final: bool, cells: int = 0) -> bool:
        """Whether a full re-send may happen now (throttled, except the last)."""
        wait = RESEND_S if cells <= LARGE_IMAGE else 1.0
        return final or self.sent_at == 0.0 or time.monotonic() - self.sent_at >= wait

    def set_notice(self, text: str) -> None:
        if self.notice.text != text:
            self.notice.text = text

    # -- to implement ------------------------------------------------------------------------
    def _build(self) -> list:
        raise NotImplementedError

    def refresh(self, columns: Columns, final: bool = False) -> None:
        """Bring the browser's copy up to the rows in ``columns``."""
        raise NotImplementedError

    def set_complex_view(self, view: str, columns: Columns) -> None:
        """Show complex values as ``view`` (a key of COMPLEX_VIEWS): redrawn whole."""
        self.complex_view = view
        self._relabel()
        self.sent, self.sent_at = 0, 0.0
        self._clear()
        self.refresh(columns, final=True)

    def _relabel(self) -> None:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError


class LinePlot(LivePlot):
    """A dependent against one setpoint (or the row index): streamed, then decimated."""

    def _build(self) -> list:
        self.source = ColumnDataSource({"x": np.empty(0), "y": np.empty(0)})
        self.figure = _figure(axis_title(self.plan.x), self.y_title, self.y_title)
        self.line = self.figure.line("x", "y", source=self.source, line_width=1.5)
        self.dots = self.figure.scatter("x", "y", source=self.source, size=3)
        self.decimated = False
        return [self.figure]

    def _relabel(self) -> None:
        self.figure.yaxis.axis_label = self.y_title
        self.figure.title.text = self.y_title

    def _clear(self) -> None:
        self.decimated = False
        self.source.data = {"x": np.empty(0), "y": np.empty(0)}

    def refresh(self, columns: Columns, final: bool = False) -> None:
        length = columns.length
        if length <= STREAM_LIMIT and not self.decimated:
            if length > self.sent:  # only the new rows go to the browser
                self.source.stream({"x": self.setpoint(columns, self.plan.x, self.sent, length),
                                    "y": self.values(columns, self.sent, length)})
                self.sent = length
            return
        if not self.due(final) or length == self.sent:
            return
        key = ("minmax", self.plan.x and self.plan.x.name, self.plan.y.name,
               self.complex_view if self.plan.part is not None else None)
        xs, ys = columns.memo(key, length, lambda: minmax_columns(
            self.setpoint(columns, self.plan.x, 0, length), self.values(columns, 0, length)))
        self.source.data = {"x": xs, "y": ys}
        self.dots.visible = False
        self.decimated = True
        self.sent, self.sent_at = length, time.monotonic()
        self.set_notice(f"decimated for display: min/max of {length:,} rows "
                        f"in {len(xs) // 2:,} pixel columns")


class MapPlot(LivePlot):
    """A dependent over two setpoints: a heatmap on a grid, else coloured points."""

    def _build(self) -> list:
        self.mapper = _mapper()
        self.image_source = ColumnDataSource(dict(_EMPTY_IMAGE))
        self.point_source = ColumnDataSource({"x": np.empty(0), "y": np.empty(0),
                                              "z": np.empty(0)})
        self.figure = _figure(axis_title(self.plan.x), axis_title(self.plan.x2), self.y_title)
        self.image = self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh",
                                       source=self.image_source, color_mapper=self.mapper)
        self.points = self.figure.scatter("x", "y", source=self.point_source, size=6,
                                          color={"field": "z", "transform": self.mapper})
        self.colorbar = ColorBar(color_mapper=self.mapper, title=self.y_title)
        self.figure.add_layout(self.colorbar, "right")
        self.mode = "points"
        return [self.figure]

    def _relabel(self) -> None:
        self.colorbar.title = self.y_title
        self.figure.title.text = self.y_title

    def _clear(self) -> None:
        self.mode = "points"
        self.image_source.data = dict(_EMPTY_IMAGE)
        self.point_source.data = {"x": np.empty(0), "y": np.empty(0), "z": np.empty(0)}

    def refresh(self, columns: Columns, final: bool = False) -> None:
        length = columns.length
        if length == self.sent or not self.due(final, length):
            return
        x = self.setpoint(columns, self.plan.x, 0, length)
        y = self.setpoint(columns, self.plan.x2, 0, length)
        z = self.values(columns, 0, length)
        grid = grid_image(x, y, z)
        if grid is None and length <= STREAM_LIMIT:
            if self.mode != "points":
                self._clear()
                self.sent = 0
            self.point_source.stream({"x": x[self.sent:], "y": y[self.sent:],
                                      "z": z[self.sent:]})
            self.set_notice("")
        else:
            grid = grid or binned_image(x, y, z)
            if grid is None:
                return
            self.mode = "image"
            self.point_source.data = {"x": np.empty(0), "y": np.empty(0), "z": np.empty(0)}
            self.image_source.data = _image_data(grid)
            self.set_notice(f"decimated for display: {length:,} rows shown as a "
                            f"{grid.image.shape[1]} x {grid.image.shape[0]} image"
                            if grid.shrunk else "")
        _set_range(self.mapper, z)
        self.sent, self.sent_at = length, time.monotonic()


class TracePlot(LivePlot):
    """An array-valued dependent: its latest trace, and a waterfall of all traces."""

    def _build(self) -> list:
        x_title = axis_title(self.plan.x) if self.plan.x is not None else "element"
        self.trace_source = ColumnDataSource({"x": np.empty(0), "y": np.empty(0)})
        self.trace = _figure(x_title, self.y_title, f"{self.y_title}: latest trace")
        self.trace.line("x", "y", source=self.trace_source, line_width=1.5)
        self.mapper = _mapper()
        self.image_source = ColumnDataSource(dict(_EMPTY_IMAGE))
        self.waterfall = _figure(x_title, "row index", f"{self.y_title}: all traces")
        self.waterfall.image(image="image", x="x", y="y", dw="dw", dh="dh",
                             source=self.image_source, color_mapper=self.mapper)
        self.colorbar = ColorBar(color_mapper=self.mapper, title=self.y_title)
        self.waterfall.add_layout(self.colorbar, "right")
        return [self.trace, self.waterfall]

    def _relabel(self) -> None:
        self.trace.yaxis.axis_label = self.y_title
        self.trace.title.text = f"{self.y_title}: latest trace"
        self.waterfall.title.text = f"{self.y_title}: all traces"
        self.colorbar.title = self.y_title

    def _clear(self) -> None:
        self.trace_source.data = {"x": np.empty(0), "y": np.empty(0)}
        self.image_source.data = dict(_EMPTY_IMAGE)

    def refresh(self, columns: Columns, final: bool = False) -> None:
        length = columns.length
        width = int(np.prod(self.plan.y.shape))
        if length == 0 or length == self.sent or not self.due(final, length * width):
            return
        latest = self.values(columns, length - 1, length)[0]
        axis = (np.arange(len(latest), dtype=np.float64) if self.plan.x is None
                else self.setpoint(columns, self.plan.x, length - 1, length)[0])
        self.trace_source.data = {"x": axis, "y": latest}
        rows = index_sample(length)
        image, shrunk = shrink_image(self.values(columns)[rows].astype(np.float32), IMAGE_SIDE)
        finite = axis[np.isfinite(axis)]
        x0, x1 = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        step = (x1 - x0) / max(len(axis) - 1, 1) or 1.0
        self.image_source.data = _image_data(GridImage(image, x0 - step / 2, -0.5,
                                                       step * len(axis), float(length),
                                                       shrunk))
        _set_range(self.mapper, image)
        self.sent, self.sent_at = length, time.monotonic()
        self.set_notice(f"decimated for display: {len(rows):,} of {length:,} traces, "
                        f"{image.shape[1]} of {len(axis)} points each"
                        if shrunk or len(rows) < length else "")


def make_plot(plan: PlotPlan, complex_view: str) -> LivePlot:
    """The live plot for ``plan``."""
    kinds = {"line": LinePlot, "map": MapPlot, "trace": TracePlot}
    return kinds[plan.kind](plan, complex_view)
