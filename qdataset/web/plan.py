"""Which plots a run gets, decided from its ParamSpecs alone (no Bokeh here).

Each dependent (role "output") is plotted against its setpoints (``depends_on``):

- no setpoint: against the row index; one setpoint: a line;
- two setpoints: a colour map (heatmap on a grid, coloured scatter otherwise);
- a 1-D array-valued dependent: its latest trace and a waterfall of traces;
- complex values: two plots, magnitude and phase or real and imaginary parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..paramspec import ParamSpec

#: numpy kinds a plot can show: bool, integers, floats, complex.
PLOTTABLE_KINDS = set("biufc")

#: The ways to show complex values: view name -> two (part name, function) pairs.
COMPLEX_VIEWS: dict[str, tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...]] = {
    "magnitude/phase": (("magnitude", np.abs), ("phase", np.angle)),
    "real/imaginary": (("real", np.real), ("imaginary", np.imag)),
}
DEFAULT_COMPLEX_VIEW = "magnitude/phase"


@dataclass(frozen=True)
class PlotPlan:
    """One plot: ``kind`` is "line" (y against x, or the row index when x is None),
    "map" (y coloured over x and x2) or "trace" (an array-valued y, against the
    array setpoint x or its element index).  ``part`` picks 0 or 1 of the complex
    view's two parts (None for real values)."""

    kind: str
    y: ParamSpec
    x: ParamSpec | None = None
    x2: ParamSpec | None = None
    part: int | None = None

    @property
    def names(self) -> list[str]:
        """The columns this plot reads."""
        return [s.name for s in (self.x, self.x2, self.y) if s is not None]

    @property
    def key(self) -> str:
        return "/".join(self.names) + ("" if self.part is None else f"#{self.part}")


def axis_title(spec: ParamSpec | None, part: str | None = None) -> str:
    """``label (unit)`` of ``spec`` (its name without a label); a complex part says
    which ("|G| (S)", "arg G (rad)"); None is the row index."""
    if spec is None:
        return "row index"
    base = spec.label or spec.name
    unit = spec.unit
    if part == "magnitude":
        base = f"|{base}|"
    elif part == "phase":
        base, unit = f"arg {base}", "rad"
    elif part == "real":
        base = f"Re {base}"
    elif part == "imaginary":
        base = f"Im {base}"
    return f"{base} ({unit})" if unit else base


def plan_plots(specs: Sequence[ParamSpec]) -> tuple[list[PlotPlan], list[str]]:
    """The plots for a run with parameters ``specs``, and a note for each
    dependent that cannot be plotted (and why)."""
    by_name = {s.name: s for s in specs}
    plans: list[PlotPlan] = []
    notes: list[str] = []
    for spec in specs:
        if spec.role != "output":
            continue
        if spec.type.kind not in PLOTTABLE_KINDS:
            notes.append(f"{spec.name}: {spec.type} values are not plotted")
            continue
        setpoints = [by_name[n] for n in spec.depends_on if n in by_name]
        usable = [s for s in setpoints if s.type.kind in PLOTTABLE_KINDS - {"c"}]
        parts: list[int | None] = [0, 1] if spec.type.kind == "c" else [None]
        if spec.is_array:
            if len(spec.shape) != 1 or spec.is_variable_length:
                notes.append(f"{spec.name}: only fixed-length 1-D arrays are plotted")
                continue
            axis = next((s for s in usable if s.shape == spec.shape), None)
            plans += [PlotPlan("trace", spec, axis, part=p) for p in parts]
            continue
        scalar = [s for s in usable if not s.is_array]
        if len(scalar) > 2:
            notes.append(f"{spec.name}: plotted against its first two setpoints only")
        kind = "map" if len(scalar) >= 2 else "line"
        x = scalar[0] if scalar else None
        x2 = scalar[1] if len(scalar) >= 2 else None
        plans += [PlotPlan(kind, spec, x, x2, part=p) for p in parts]
    return plans, notes
