"""AnalysisResult: one named outcome of an analysis (a fitted value, a fidelity, ...)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from . import serialization
from .errors import InvalidAnalysisResultError


@dataclasses.dataclass
class AnalysisResult:
    """A named analysis outcome, stored beside the experiment's data.

    >>> res = AnalysisResult(name="fidelity", value=0.98, quality="good",
    ...                      device_components=["Q0", "Q1"], extra={"shots": 1000})
    >>> exp.add_analysis_results(res)
    >>> exp.analysis_results("fidelity").value
    0.98

    ``value`` may be any JSON-able value, numpy scalars and arrays, or complex
    numbers.  ``quality`` is free text ("good", "bad", ...); ``result_id`` is
    a fresh UUID unless given.
    """

    name: str
    value: Any = None
    quality: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    device_components: list[str] = dataclasses.field(default_factory=list)
    chisq: float | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    verified: bool = False
    experiment_id: str | None = None
    result_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = dataclasses.field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidAnalysisResultError(
                f"AnalysisResult name must be a non-empty string, got {self.name!r}")
        self.device_components = [str(c) for c in self.device_components]

    def copy(self) -> AnalysisResult:
        """A copy with a new ``result_id`` (values are deep-copied through JSON)."""
        return dataclasses.replace(
            self,
            value=serialization.loads(serialization.dumps(self.value)),
            extra=serialization.loads(serialization.dumps(self.extra)),
            device_components=list(self.device_components),
            tags=list(self.tags),
            result_id=str(uuid.uuid4()),
        )

    # -- storage form ---------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """The ``analysis_results`` columns for this result (without experiment/position)."""
        return {
            "result_id": self.result_id,
            "name": self.name,
            "value": serialization.dumps(self.value),
            "quality": None if self.quality is None else str(self.quality),
            "chisq": None if self.chisq is None else float(self.chisq),
            "extra": serialization.dumps(self.extra),
            "device_components": serialization.dumps(self.device_components),
            "tags": serialization.dumps(list(self.tags)),
            "verified": bool(self.verified),
            "created_at": float(self.created_at),
            "updated_at": time.time(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AnalysisResult:
        """Rebuild a result from its stored columns."""
        return cls(
            name=row["name"],
            value=serialization.loads(row["value"]),
            quality=row["quality"],
            extra=serialization.loads(row["extra"]) or {},
            device_components=serialization.loads(row["device_components"]) or [],
            chisq=row["chisq"],
            tags=serialization.loads(row["tags"]) or [],
            verified=bool(row["verified"]),
            experiment_id=row["experiment_id"],
            result_id=row["result_id"],
            created_at=row["created_at"],
        )
