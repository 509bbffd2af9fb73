"""``python -m benchmarks.web``: qdataset serve in a real headless Chromium (issue 14).

Prints, against the issue's goals:

1. the time from a writer's flush to the new row count shown in the page
   (median and p95 over ``--samples`` flushes, default flush interval);
2. the time until the page of a 1M-row, 4-parameter run shows its plots
   (cold: the server reads the run for its first viewer);
3. a row-by-row writer's rows/s (in its own process) with 0 and with 10 pages
   open on its run (goal: at most 10% slower).

Needs the 'web' extra, the playwright package and Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import qdataset
from qdataset import DataSet, ParamSpec

ROOT = Path(__file__).resolve().parents[1]

#: The text of the element with class ``cls``, looked up through Bokeh's shadow roots.
FIND_JS = """(cls) => {
  const find = (root) => {
    const hit = root.querySelector('.' + cls);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*'))
      if (el.shadowRoot) { const inner = find(el.shadowRoot); if (inner) return inner; }
    return null;
  };
  const el = find(document);
  return el ? el.textContent : null;
}"""

PLOTS_READY_JS = """(count) => typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 &&
  [...Bokeh.documents[0].all_models].filter(m => m.type == 'GlyphRenderer' &&
     m.glyph.type == 'Line' && m.data_source.get_length() > 0).length >= count"""


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "qdataset", "serve", "--url", url,
                               "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = server.stdout.readline()
    if " at http://" not in line:
        server.kill()
        raise SystemExit(f"qdataset serve did not start: {line!r}")
    return server, line.strip().rsplit(" at ", 1)[1]


def flush_to_page(page, base: str, store: qdataset.Store, samples: int) -> list[float]:
    """Seconds from ds.flush() returning to the page showing the new row count."""
    x = ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate")
    ds = DataSet("latency", [x, ParamSpec("y", np.float64, depends_on=["x"])], store=store)
    ds.add_result(x=0.0, y=0.0)
    ds.flush()
    page.goto(base + f"run?id={ds.id}")
    page.wait_for_function(f"() => ({FIND_JS})('qd-rows') === '1'", timeout=30_000)
    delays = []
    for i in range(1, samples + 1):
        time.sleep(0.25)  # let the page settle between samples
        ds.add_result(x=float(i), y=float(i))
        ds.flush()
        start = time.perf_counter()
        page.wait_for_function(f"() => ({FIND_JS})('qd-rows') === '{i + 1}'",
                               polling="raf", timeout=30_000)
        delays.append(time.perf_counter() - start)
    ds.mark_completed()
    return delays


def big_page(page, base: str, store: qdataset.Store, rows: int) -> float:
    """Seconds from opening the page of a ``rows``-row, 4-parameter run to its plots."""
    t = np.arange(rows, dtype=np.float64)
    specs = [ParamSpec("t", np.float64, role="setpoint", unit="s", label="time")] + [
        ParamSpec(f"v{k}", np.float64, depends_on=["t"], unit="V") for k in range(3)]
    ds = DataSet("big", specs, [t, np.sin(t / 1e4), np.cos(t / 1e4), t % 97], store=store)
    ds.mark_completed()
    start = time.perf_counter()
    page.goto(base + f"run?id={ds.id}")
    page.wait_for_function(PLOTS_READY_JS, arg=3, polling="raf", timeout=120_000)
    return time.perf_counter() - start


WRITER = """
import sys, time
import numpy as np
import qdataset
from qdataset import DataSet, ParamSpec

store = qdataset.connect(sys.argv[1])
x = ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate")
ds = DataSet("rate", [x, ParamSpec("y", np.float64, depends_on=["x"])], store=store)
ds.add_result(x=0.0, y=0.0)
ds.flush()
print(ds.id, flush=True)
sys.stdin.readline()                      # go: the pages are open
seconds = float(sys.argv[2])
n, start = 1, time.perf_counter()
while time.perf_counter() - start < seconds:
    ds.add_result(x=float(n), y=float(n) ** 0.5)
    n += 1
rate = (n - 1) / (time.perf_counter() - start)
ds.mark_completed()
store.close()
print(f"{rate:.1f}", flush=True)
"""


def writer_rate(browser, base: str, url: str, pages: int, seconds: float) -> float:
    """Rows/s of a row-by-row writer process while ``pages`` pages show its run."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    run_id = writer.stdout.readline().strip()
    opened = []
    for _ in range(pages):
        page = browser.new_page()
        page.goto(base + f"run?id={run_id}")
        page.wait_for_function(f"() => ({FIND_JS})('qd-rows') === '1'", timeout=60_000)
        opened.append(page)
    writer.stdin.write("go\n")
    writer.stdin.flush()
    rate = float(writer.stdout.readline())
    writer.wait(timeout=60)
    for page in opened:
        page.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    parser.add_argument("--samples", type=int, default=40, help="flushes timed (default 40)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="big run's rows")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--pages", type=int, default=10, help="pages open on the writer's run")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="seconds each writer-rate measurement writes (default 5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="writer-rate measurements per setting, alternating (median)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'web.db'}"
        store = qdataset.connect(url)
        server, base = start_server(url)
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium)
                page = browser.new_page()
                delays = flush_to_page(page, base, store, args.samples)
                load = big_page(browser.new_page(), base, store, args.rows)
                alone, watched = [], []
                for _ in range(args.repeats):  # alternate, so drifting load hits both alike
                    alone.append(writer_rate(browser, base, url, 0, args.seconds))
                    watched.append(writer_rate(browser, base, url, args.pages, args.seconds))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            store.close()
    median = statistics.median(delays) * 1000
    p95 = float(np.percentile(delays, 95)) * 1000
    print(f"flush -> row count in the page: median {median:.0f} ms, p95 {p95:.0f} ms "
          f"({len(delays)} flushes; goal: median <= 300 ms)")
    print(f"page of a {args.rows:,}-row, 4-parameter run shows its plots: {load:.2f} s "
          "(cold; goal <= 2 s)")
    rate0, rate_n = statistics.median(alone), statistics.median(watched)
    print(f"row-by-row writer: {rate0:,.0f} rows/s with no page open, {rate_n:,.0f} rows/s "
          f"with {args.pages} pages on its run = {rate_n / rate0:.2f}x (goal: >= 0.90x; "
          f"median of {args.repeats}, {args.seconds:g} s each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
