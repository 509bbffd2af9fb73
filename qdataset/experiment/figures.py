"""Figures kept with an experiment: matplotlib figures become SVG; SVG/PNG bytes are kept.

>>> data, fmt = figure_bytes(fig)          # a matplotlib Figure
>>> fmt
'svg'
"""

from __future__ import annotations

import dataclasses
import io
import time
from typing import Any

from .errors import UnsupportedResultError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass
class FigureData:
    """A stored figure: its name, format ("svg" or "png") and bytes.

    Jupyter shows it inline (``_repr_svg_`` / ``_repr_png_``);
    ``open("hist.svg", "wb").write(exp.figure("hist").data)`` saves it.
    """

    name: str
    format: str
    data: bytes
    created_at: float = dataclasses.field(default_factory=time.time)

    def _repr_svg_(self) -> str | None:
        return self.data.decode("utf-8") if self.format == "svg" else None

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None

    def copy(self, name: str | None = None) -> FigureData:
        return dataclasses.replace(self, name=name or self.name)


def figure_bytes(figure: Any) -> tuple[bytes, str]:
    """``(bytes, format)`` for a matplotlib Figure, SVG text/bytes or PNG bytes."""
    if isinstance(figure, FigureData):
        return figure.data, figure.format
    if isinstance(figure, bytes | bytearray | memoryview):
        data = bytes(figure)
        return data, _sniff(data)
    if isinstance(figure, str):
        if "<svg" in figure[:2000]:
            return figure.encode("utf-8"), "svg"
        raise UnsupportedResultError(
            "a figure given as text must be SVG markup; pass a matplotlib Figure, "
            "SVG text or bytes, or PNG bytes"
        )
    if hasattr(figure, "savefig"):  # a matplotlib Figure, imported only if one is given
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight")
        return buffer.getvalue(), "svg"
    raise UnsupportedResultError(
        f"cannot store a figure of type {type(figure).__name__}; pass a matplotlib Figure, "
        "SVG text or bytes, or PNG bytes"
    )


def _sniff(data: bytes) -> str:
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if b"<svg" in data[:2000]:
        return "svg"
    raise UnsupportedResultError(
        "figure bytes are neither PNG nor SVG; save the figure as PNG or SVG first "
        "(fig.savefig(buf, format='svg')) or pass the matplotlib Figure itself"
    )
