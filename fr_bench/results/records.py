""":class:`ProtocolResult`: what ``protocol.evaluate`` returns (the numbers, their conventions and score records)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fr_bench.results.encode import to_jsonable
from fr_bench.results.scores import ScoreRecords


@dataclass
class ProtocolResult:
    """What ``protocol.evaluate`` returns: the official numbers and everything needed to trust them.

    * ``metrics``: flat dict of named numbers, e.g. ``accuracy``, ``accuracy_std``, ``tar@far=1e-4``, ``rank1``.
    * ``conventions``: the named convention behind each metric group (``{"accuracy": "kfold-grid", ...}``).
    * ``operating_points``: per thresholded metric, the operating point actually realised
      (``{"tar@far=1e-4": {"target": 1e-4, "far": ..., "threshold": ..., "tar": ...}}``).
    * ``intervals``: confidence intervals, ``{"accuracy": {"low": ..., "high": ..., "level": 0.95, "unit": ...}}``.
    * ``details``: curves (downsampled ROC), score-distribution summaries, per-fold numbers, counts.
    * ``flags``: human-readable warnings a reader must see (unresolvable FARs, skipped pairs, unknown data hash).
    * ``scores``: the typed per-pair / per-search records (:class:`~fr_bench.results.scores.ScoreRecords`) kept
      for paired comparisons and plots; not written to JSON (the runner files them in HDF5).
    """

    protocol: str
    metrics: dict[str, float]
    conventions: dict[str, str] = field(default_factory=dict)
    operating_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    scores: ScoreRecords = field(default_factory=ScoreRecords, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the ``scores`` records)."""
        return {
            "protocol": self.protocol,
            "metrics": to_jsonable(self.metrics),
            "conventions": dict(self.conventions),
            "operating_points": to_jsonable(self.operating_points),
            "intervals": to_jsonable(self.intervals),
            "details": to_jsonable(self.details),
            "flags": list(self.flags),
            "provenance": to_jsonable(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProtocolResult:
        """Inverse of :meth:`to_dict` (``None`` metrics read back as NaN)."""
        metrics = {k: (float("nan") if v is None else v) for k, v in data.get("metrics", {}).items()}
        return cls(
            protocol=data["protocol"],
            metrics=metrics,
            conventions=dict(data.get("conventions", {})),
            operating_points=dict(data.get("operating_points", {})),
            intervals=dict(data.get("intervals", {})),
            details=dict(data.get("details", {})),
            flags=list(data.get("flags", [])),
            provenance=dict(data.get("provenance", {})),
        )
