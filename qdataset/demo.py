"""The demo measurement: a simulated 2-D gate sweep written row by row."""

from __future__ import annotations

import time

import numpy as np

from . import ParamSpec
from .dataset import DataSet
from .store import Store


def resonance(g1: float, g2: float, rng: np.random.Generator) -> float:
    """Conductance of a noisy charge-sensor resonance along a tilted line."""
    detuning = g2 - 0.35 * g1 - 0.1
    width = 0.04
    return float(1.0 / (1.0 + (detuning / width) ** 2) + 0.03 * rng.standard_normal())


def run_demo(store: Store, points: int = 60, delay: float = 0.0, seed: int = 1,
             progress: bool = True) -> DataSet:
    """Sweep two gates over ``points`` x ``points`` values, one result per point."""
    from tqdm import tqdm

    specs = [
        ParamSpec("gate1", np.float64, role="setpoint", unit="V", label="Gate 1"),
        ParamSpec("gate2", np.float64, role="setpoint", unit="V", label="Gate 2"),
        ParamSpec("conductance", np.float64, unit="e^2/h", label="G",
                  depends_on=["gate1", "gate2"]),
    ]
    rng = np.random.default_rng(seed)
    gates1 = np.linspace(-1.0, 1.0, points)
    gates2 = np.linspace(-1.0, 1.0, points)
    dataset = DataSet("gate_sweep", specs, store=store)
    dataset.add_metadata("sample", {"name": "demo device", "fridge": "simulated"})
    dataset.add_metadata("sweep", {"points": points, "delay_s": delay, "seed": seed})
    with dataset, tqdm(total=points * points, unit="pt", disable=not progress,
                       desc="gate sweep") as bar:
        for g1 in gates1:
            for g2 in gates2:
                dataset.add_result(gate1=g1, gate2=g2, conductance=resonance(g1, g2, rng))
                bar.update()
                if delay:
                    time.sleep(delay)
    return dataset


def summary(dataset: DataSet, store: Store) -> str:
    """What was written and three lines of Python to read it back."""
    location = store.path or store.engine.url.render_as_string(hide_password=True)
    url = store.url if store.path is None else f"sqlite:///{store.path}"
    return "\n".join([
        f"run id   : {dataset.id}",
        f"rows     : {dataset.length} ({'completed' if dataset.is_marked_complete else 'open'})",
        f"stored in: {location}",
        "",
        "read it back:",
        "    import qdataset",
        f"    ds = qdataset.connect({url!r}).read_dataset({dataset.id!r})",
        '    g1, g2, G = ds.get_data("gate1", "gate2", "conductance")',
    ])
