"""``qdataset serve`` in a real headless Chromium (Debian's, driven by Playwright).

The server runs as a subprocess, a writer in another; the tests check what the
page shows.  They skip, saying why, where Chromium or Playwright is missing
(CI installs both: see .ci/run).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

pytest.importorskip("bokeh", reason="qdataset serve needs the 'web' extra")
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="the browser tests need the 'playwright' package")

import qdataset  # noqa: E402
from qdataset import DataSet, ParamSpec  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("QDATASET_TEST_CHROMIUM") or shutil.which("chromium") \
    or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 20_000  # deadline for what the page should come to show

#: A writer in its own process, driven line by line through stdin so the test says
#: when rows arrive: "add N" appends N rows and flushes; "done" completes the run;
#: "die" SIGKILLs the process (no reply).
WRITER = """
import os, signal, sys, numpy as np, qdataset
from qdataset import DataSet, ParamSpec
store = qdataset.connect(sys.argv[1])
specs = [ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate"),
         ParamSpec("y", np.float64, depends_on=["x"], unit="A", label="current")]
ds = DataSet("live_sweep", specs, store=store)
print(ds.id, flush=True)
n = 0
for line in sys.stdin:
    command, *rest = line.split()
    if command == "add":
        xs = np.arange(n, n + int(rest[0]), dtype=float)
        ds.add_results({"x": xs, "y": np.sin(xs)})
        ds.flush()
        n += len(xs)
    elif command == "done":
        ds.mark_completed()
    elif command == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    print("ok", flush=True)
store.close()
"""

#: What the page's Bokeh document holds: axis titles, colour bar titles, and per
#: renderer its glyph type, visibility and row count (read from BokehJS's models).
MODELS_JS = """() => {
  const out = {axes: [], colorbars: [], renderers: []};
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (m.axis_label !== undefined && m.axis_label !== null) out.axes.push(m.axis_label);
    if (m.type == 'ColorBar') out.colorbars.push(m.title);
    if (m.type == 'GlyphRenderer')
      out.renderers.push([m.glyph.type, m.visible, m.data_source.get_length()]);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium "
                    "(or set QDATASET_TEST_CHROMIUM)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.qd_requests = []  # every URL the pages of this context asked for
    context.on("request", lambda request: opened.qd_requests.append(request.url))
    yield opened
    context.close()


class Lines:
    """A subprocess's output lines, read on a thread, waited for with a deadline."""

    def __init__(self, stream) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # the process closed its output (it ended)

    def next(self, timeout: float = 60.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s") from None
        if line is None:
            raise AssertionError("the process ended before printing what was expected")
        return line


@contextmanager
def served(url: str, *extra: str) -> Iterator[tuple[str, list[str]]]:
    """``qdataset serve`` on a free port: (base URL, the lines it printed)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "qdataset", "serve", "--url", url, "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out = Lines(server.stdout)
        try:
            printed = [out.next()]
            if extra:
                printed.append(out.next())
        except AssertionError as exc:
            server.kill()
            raise AssertionError(f"{exc}: {server.communicate()[1]}") from None
        assert " at http://" in printed[0], printed
        yield printed[0].rsplit(" at ", 1)[1], printed
    finally:
        server.terminate()
        server.wait(timeout=30)
        errors = server.stderr.read()
        assert "Traceback" not in errors, errors


@contextmanager
def writer(url: str) -> Iterator[tuple[str, callable]]:
    """The WRITER process: (its run id, send(command) that waits for "ok", or for
    the process to end after "die")."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = Lines(proc.stdout)

    def send(command: str) -> None:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        if command == "die":
            assert proc.wait(timeout=60) == -9
        else:
            assert out.next() == "ok"

    try:
        yield out.next(), send
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def only_local(requests: list[str], base: str) -> list[str]:
    """The requests that went anywhere but the served host."""
    host = urlsplit(base).netloc
    return [r for r in requests if urlsplit(r).netloc != host]


def test_a_run_being_written_shows_up_and_grows_live(store_url, page, browser):
    """List and run page follow a writer in another process; on both engines."""
    expect = playwright.expect
    with writer(store_url) as (run_id, send):
        send("add 10")
        with served(store_url) as (base, _):
            assert base.startswith("http://127.0.0.1:")  # loopback unless --host
            page.goto(base)
            row = page.locator(f'tr.qd-run[data-id="{run_id}"]')
            expect(row.locator(".qd-run-name")).to_have_text("live_sweep", timeout=WAIT_MS)
            expect(row.locator(".qd-run-state")).to_have_text("running")
            expect(row.locator(".qd-run-rows")).to_have_text("10", timeout=WAIT_MS)

            run_page = page.context.new_page()
            row.locator("a").click()  # the list links to the run page
            page.wait_for_url(f"**/run?id={run_id}")
            run_page.goto(base + f"run?id={run_id}")  # a second viewer of the same run
            for viewer in (page, run_page):
                expect(viewer.locator(".qd-name")).to_have_text("live_sweep", timeout=WAIT_MS)
                expect(viewer.locator(".qd-state")).to_have_text("running")
                expect(viewer.locator(".qd-rows")).to_have_text("10", timeout=WAIT_MS)
            models = page.evaluate(MODELS_JS)
            assert "gate (V)" in models["axes"] and "current (A)" in models["axes"]
            assert ["Line", True, 10] in models["renderers"]

            send("add 15")
            for viewer in (page, run_page):
                expect(viewer.locator(".qd-rows")).to_have_text("25", timeout=WAIT_MS)
            send("done")
            for viewer in (page, run_page):
                expect(viewer.locator(".qd-state")).to_have_text("completed", timeout=WAIT_MS)
            assert ["Line", True, 25] in page.evaluate(MODELS_JS)["renderers"]
            run_page.goto(base)
            expect(run_page.locator(f'tr.qd-run[data-id="{run_id}"] .qd-run-state')
                   ).to_have_text("completed", timeout=WAIT_MS)
            assert only_local(page.qd_requests, base) == []


def test_a_run_whose_writer_died_shows_interrupted_then_resumes(tmp_path, page):
    """A SIGKILLed writer tells nobody: the run page and the list turn to
    "interrupted" by themselves, and follow the run again once it is resumed."""
    expect = playwright.expect
    url = f"sqlite:///{tmp_path / 'died.db'}"
    with writer(url) as (run_id, send), served(url) as (base, _):
        send("add 10")
        page.goto(base + f"run?id={run_id}")
        expect(page.locator(".qd-rows")).to_have_text("10", timeout=WAIT_MS)
        expect(page.locator(".qd-state")).to_have_text("running")
        send("die")
        expect(page.locator(".qd-state")).to_have_text("interrupted", timeout=WAIT_MS)
        listing = page.context.new_page()
        listing.goto(base)
        expect(listing.locator(f'tr.qd-run[data-id="{run_id}"] .qd-run-state')
               ).to_have_text("interrupted", timeout=WAIT_MS)
        with qdataset.connect(url) as store:
            resumed = store.resume_dataset(run_id)
            resumed.add_results({"x": np.arange(10.0, 15.0), "y": np.zeros(5)})
            resumed.mark_completed()
        expect(page.locator(".qd-rows")).to_have_text("15", timeout=WAIT_MS)
        expect(page.locator(".qd-state")).to_have_text("completed", timeout=WAIT_MS)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_heatmap_decimation_filters_and_read_only(tmp_path, page):
    """A 2-D grid sweep shows a heatmap; a 1M-row run a decimated line, and says so;
    the list filters; nothing is written to the store; foreign websockets are refused."""
    expect = playwright.expect
    path = tmp_path / "lab.db"
    url = f"sqlite:///{path}"
    g1, g2 = np.meshgrid(np.linspace(-1, 1, 30), np.linspace(0, 2, 20), indexing="ij")
    with qdataset.connect(url) as store:
        gate = ParamSpec("g1", np.float64, role="setpoint", unit="V", label="Gate 1")
        grid = DataSet("grid_sweep", [
            gate, ParamSpec("g2", np.float64, role="setpoint", unit="V", label="Gate 2"),
            ParamSpec("G", np.float64, depends_on=["g1", "g2"], unit="S", label="conductance")],
            [g1.ravel(), g2.ravel(), np.cos(g1 * g2).ravel()], store=store)
        grid.mark_completed()
        n = 1_000_000
        t = np.arange(n, dtype=np.float64)
        big = DataSet("long_trace", [
            ParamSpec("t", np.float64, role="setpoint", unit="s", label="time"),
            ParamSpec("v", np.float64, depends_on=["t"], unit="V", label="voltage")],
            [t, np.sin(t / 5000.0)], store=store)
        big.mark_completed()
    before = _sha256(path)

    with served(url, "--run", big.id) as (base, printed):
        assert printed[1].endswith(f"/run?id={big.id}")  # --run prints the run page

        page.goto(printed[1].rsplit(" at ", 1)[1])
        expect(page.locator(".qd-rows")).to_have_text("1000000", timeout=WAIT_MS)
        expect(page.get_by_text("decimated for display")).to_be_visible(timeout=WAIT_MS)
        models = page.evaluate(MODELS_JS)
        assert "time (s)" in models["axes"] and "voltage (V)" in models["axes"]
        lines = [r for r in models["renderers"] if r[0] == "Line"]
        assert lines and 0 < lines[0][2] <= 2400  # min/max per pixel column, not 1M points

        page.goto(base + f"run?id={grid.id}")
        expect(page.locator(".qd-state")).to_have_text("completed", timeout=WAIT_MS)
        expect(page.locator(".qd-rows")).to_have_text("600")
        page.wait_for_function(
            "() => [...Bokeh.documents[0].all_models].some(m => m.type == 'GlyphRenderer'"
            " && m.glyph.type == 'Image' && m.data_source.get_length() == 1)", timeout=WAIT_MS)
        models = page.evaluate(MODELS_JS)
        assert {"Gate 1 (V)", "Gate 2 (V)"} <= set(models["axes"])
        assert models["colorbars"] == ["conductance (S)"]
        page.screenshot(path=str(tmp_path / "run-page.png"), full_page=True)
        if os.environ.get("QDATASET_SCREENSHOT_DIR"):  # how docs/run-page.png is made
            page.screenshot(path=os.path.join(os.environ["QDATASET_SCREENSHOT_DIR"],
                                              "run-page.png"), full_page=True)

        page.goto(base)
        rows = page.locator("tr.qd-run")
        expect(rows).to_have_count(2, timeout=WAIT_MS)
        page.locator("input").first.fill("GRID")
        expect(rows).to_have_count(1, timeout=WAIT_MS)
        expect(rows.first.locator(".qd-run-name")).to_have_text("grid_sweep")
        page.locator("select").select_option("running")
        expect(rows).to_have_count(0, timeout=WAIT_MS)

        # A page served elsewhere cannot open this server's websocket.
        host = urlsplit(base)
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        connection.request("GET", "/ws", headers={
            "Origin": "http://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert connection.getresponse().status == 403
        connection.close()
        assert only_local(page.qd_requests, base) == []
    assert _sha256(path) == before  # the server never wrote to the store
