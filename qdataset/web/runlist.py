"""The run list page (``/``): every run of the store, newest first, kept current."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import Div, Select, TextInput

from ..store import RunInfo
from ..store.store import RUN_STATES
from .follow import RunListWatcher
from .style import PAGE_STYLE

#: Rows shown at most (the newest matching runs); the page says when there are more.
MAX_SHOWN = 500

ALL_STATES = "all"


def run_page_path(run_id: str) -> str:
    """The run page's path and query for ``run_id`` (relative to the server root)."""
    return f"run?id={quote(run_id, safe='')}"


def runs_table(runs: list[RunInfo], name: str = "", state: str = ALL_STATES) -> str:
    """HTML of the runs whose name contains ``name`` (any case) and in ``state``."""
    wanted = name.strip().lower()
    chosen = [r for r in runs if (not wanted or wanted in r.name.lower())
              and (state == ALL_STATES or r.state == state)]
    lines = [PAGE_STYLE, '<table class="qd-table qd-runs"><thead><tr><th>id</th><th>name</th>'
             '<th>created (UTC)</th><th class="qd-num">rows</th><th>state</th></tr></thead>'
             '<tbody>']
    for run in chosen[:MAX_SHOWN]:
        lines.append(
            f'<tr class="qd-run" data-id="{escape(run.id)}">'
            f'<td><a href="{run_page_path(run.id)}">{escape(run.id)}</a></td>'
            f'<td class="qd-run-name">{escape(run.name)}</td>'
            f'<td>{run.created:%Y-%m-%d %H:%M:%S}</td>'
            f'<td class="qd-num qd-run-rows">{run.length}</td>'
            f'<td class="qd-state-{run.state} qd-run-state">{run.state}</td></tr>')
    lines.append("</tbody></table>")
    shown = min(len(chosen), MAX_SHOWN)
    summary = f"{shown} of {len(runs)} runs shown"
    if len(chosen) > MAX_SHOWN:
        summary += f" (the newest {MAX_SHOWN} of {len(chosen)} matching)"
    lines.append(f'<p class="qd-count">{summary}</p>')
    return "".join(lines)


def run_list_document(doc: Document, watcher: RunListWatcher, store_name: str) -> None:
    """Fill ``doc`` (one browser session) with the run list, kept current by ``watcher``."""
    doc.title = "qdataset runs"
    header = Div(text=f'{PAGE_STYLE}<h1>Runs</h1><p class="qd-store">{escape(store_name)}</p>')
    name_filter = TextInput(title="name contains", placeholder="any name", width=260)
    state_filter = Select(title="state", value=ALL_STATES, options=[ALL_STATES, *RUN_STATES],
                          width=160)
    table = Div(text="loading…", sizing_mode="stretch_width")
    problem = Div(text="")
    pending = [False]

    def render() -> None:
        pending[0] = False
        text = runs_table(watcher.runs, name_filter.value_input or name_filter.value,
                          state_filter.value)
        if table.text != text:
            table.text = text
        problem.text = ("" if watcher.error is None else
                        f'<p class="qd-error">reading the store failed: '
                        f'{escape(watcher.error)}</p>')

    def changed(_watcher: RunListWatcher) -> None:  # on the watcher's thread
        if not pending[0]:
            pending[0] = True
            doc.add_next_tick_callback(render)

    name_filter.on_change("value_input", lambda attr, old, new: render())
    name_filter.on_change("value", lambda attr, old, new: render())
    state_filter.on_change("value", lambda attr, old, new: render())
    watcher.add_listener(changed)
    doc.on_session_destroyed(lambda context: watcher.remove_listener(changed))
    doc.add_root(column(header, row(name_filter, state_filter), problem, table,
                        sizing_mode="stretch_width"))
