"""The live-plot example follows a run written by `qdataset demo` in another process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import qdataset

ROOT = Path(__file__).resolve().parents[1]


def test_live_plot_follows_demo_in_another_process(tmp_path):
    pytest.importorskip("matplotlib", reason="the live plot needs the 'experiment' extra")
    url = f"sqlite:///{tmp_path / 'live.db'}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "qdataset", "demo", "--url", url, "--points", "20",
         "--delay", "0.005"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        with qdataset.connect(url) as store:  # wait until the demo created its run
            deadline = time.monotonic() + 60
            while not store.runs() and time.monotonic() < deadline:
                time.sleep(0.05)
            run_id = store.runs()[0].id
        picture = tmp_path / "live.png"
        plot = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "live_plot.py"), run_id, "--url", url,
             "--save", str(picture), "--timeout", "120"],
            capture_output=True, text=True, timeout=180,
        )
    finally:
        demo.wait(timeout=120)
    assert plot.returncode == 0, plot.stderr
    assert "400 points, completed=True" in plot.stdout
    assert picture.stat().st_size > 1000
