"""The run page (``/run?id=<run id>``): one run's state, parameters, metadata and
live plots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape

from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import Div, RadioButtonGroup

from ..errors import QDatasetError
from ..paramspec import ParamSpec
from .follow import RunFollower, RunHub
from .plan import COMPLEX_VIEWS, DEFAULT_COMPLEX_VIEW, plan_plots
from .plots import RESEND_S, LivePlot, make_plot
from .style import PAGE_STYLE


def header_html(follower: RunFollower) -> str:
    """Name, id, state and row count, as the page shows them."""
    created = datetime.fromtimestamp(follower.created_at, tz=UTC)
    loading = "" if follower.ready.is_set() else ' <span class="qd-loading">(loading…)</span>'
    problem = ("" if follower.error is None else
               f'<p class="qd-error">following stopped: {escape(follower.error)}</p>')
    return (f'{PAGE_STYLE}<p><a href="./">all runs</a></p>'
            f'<h1 class="qd-name">{escape(follower.name)}</h1>'
            f'<p><span class="qd-id">{escape(follower.id)}</span> · created '
            f'{created:%Y-%m-%d %H:%M:%S} UTC · <span class="qd-state '
            f'qd-state-{follower.state}">{follower.state}</span> · '
            f'<span class="qd-rows">{follower.columns.length}</span> rows{loading}</p>'
            + problem)


def parameters_html(specs: list[ParamSpec]) -> str:
    """The parameters as a table: name, label, unit, dtype, shape, role, depends on."""
    rows = "".join(
        f'<tr class="qd-param"><td>{escape(s.name)}</td><td>{escape(s.label or "")}</td>'
        f'<td>{escape(s.unit or "")}</td><td>{escape(str(s.type))}</td>'
        f'<td>{escape(str(s.shape) if s.shape else "scalar")}</td><td>{s.role}</td>'
        f'<td>{escape(", ".join(s.depends_on))}</td></tr>' for s in specs)
    return (f'{PAGE_STYLE}<h2>Parameters</h2><table class="qd-table qd-params"><thead><tr>'
            '<th>name</th><th>label</th><th>unit</th><th>dtype</th><th>shape</th><th>role</th>'
            f'<th>depends on</th></tr></thead><tbody>{rows}</tbody></table>')


def metadata_html(metadata: dict) -> str:
    text = json.dumps(metadata, indent=2, sort_keys=True, default=str, allow_nan=True)
    return f'{PAGE_STYLE}<h2>Metadata</h2><pre class="qd-metadata">{escape(text)}</pre>'


def run_document(doc: Document, hub: RunHub) -> None:
    """Fill ``doc`` (one browser session) with the page of the run named in the URL."""
    arguments = doc.session_context.request.arguments if doc.session_context else {}
    run = (arguments.get("id") or [b""])[0].decode("utf-8", "replace").strip()
    if not run:
        doc.title = "qdataset: no run"
        doc.add_root(Div(text=f'{PAGE_STYLE}<p class="qd-error">No run given: open '
                              '<code>/run?id=RUN_ID</code>, or pick one in '
                              '<a href="./">the run list</a>.</p>'))
        return
    header = Div(text="", sizing_mode="stretch_width")
    pending = [False]
    page: dict[str, object] = {}

    def changed(_follower: RunFollower) -> None:  # on the follower's thread
        if not pending[0]:
            pending[0] = True
            doc.add_next_tick_callback(lambda: update())  # defined below, run later

    try:
        follower = hub.follow(run, changed)
    except QDatasetError as exc:
        doc.title = "qdataset: run not found"
        doc.add_root(Div(text=f'{PAGE_STYLE}<p class="qd-error">{escape(str(exc))}</p>'
                              '<p><a href="./">all runs</a></p>'))
        return
    doc.on_session_destroyed(lambda context: hub.leave(follower, changed))
    doc.title = f"qdataset: {follower.name}"

    plans, notes = plan_plots(follower.specs)
    plots: list[LivePlot] = [make_plot(plan, DEFAULT_COMPLEX_VIEW) for plan in plans]
    parts: list = [header]
    if any(plan.part is not None for plan in plans):
        views = list(COMPLEX_VIEWS)
        chooser = RadioButtonGroup(labels=views, active=views.index(DEFAULT_COMPLEX_VIEW))

        def choose(attr: str, old: int, new: int) -> None:
            for plot in plots:
                if plot.plan.part is not None:
                    plot.set_complex_view(views[new], follower.columns)

        chooser.on_change("active", choose)
        parts += [Div(text="complex values as"), chooser]
    parts += [plot.model for plot in plots]
    if notes:
        parts.append(Div(text="<br>".join(escape(note) for note in notes)))
    if not plans:
        parts.append(Div(text="<p>This run has no numeric dependent parameter to plot.</p>"))
    metadata = Div(text=metadata_html({}), sizing_mode="stretch_width")
    parts += [Div(text=parameters_html(follower.specs), sizing_mode="stretch_width"), metadata]
    page["metadata"] = None

    def update() -> None:
        pending[0] = False
        text = header_html(follower)
        if header.text != text:
            header.text = text
        if follower.metadata != page["metadata"]:
            page["metadata"] = follower.metadata
            metadata.text = metadata_html(follower.metadata)
        for plot in plots:
            plot.refresh(follower.columns, final=follower.completed)
        # A throttled plot that left rows out looks again, even if no new rows come.
        if not pending[0] and any(plot.sent < follower.columns.length for plot in plots):
            pending[0] = True
            doc.add_timeout_callback(update, int(RESEND_S * 1000) + 20)

    update()
    doc.add_root(column(*parts, sizing_mode="stretch_width"))
