"""The best checkpoint by a named validation metric (``run.keep_best``): its direction, its record, its resume.

The trainer hands every validation's metrics (the dict the callbacks return: training knows no protocol) to a
:class:`BestTracker`. When the named metric improves strictly on the best so far, the trainer writes ``best.pt``
(the same self-describing checkpoint as ``checkpoint.pt``) and ``best.json``::

    {"metric": "val_lfw_accuracy", "mode": "max", "value": 0.9917, "step": 4000, "checkpoint": "best.pt",
     "history": [[2000, 0.9883], [4000, 0.9917]]}

``history`` lists every improvement (step, value). A resumed run reads ``best.json`` back, so a later, worse
validation never overwrites the best of the interrupted part. A NaN never improves.

Direction: ``run.keep_best_mode`` ("max" or "min") when set, else from the metric's kind, read by the one metric
vocabulary (:mod:`fr_bench.metrics.names`) from the end of the name (``val_<protocol>_<metric>``): lower is better
for ``eer`` and the fold spread (``accuracy_std``, ``accuracy_sem``), higher for accuracy, TAR, AUC, rank-k, TPIR.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fr_bench.metrics import names
from fr_bench.provenance import atomic_write_bytes

BEST = "best.pt"
BEST_RECORD = "best.json"
MODES = ("max", "min")
#: Metric kinds (fr_bench.metrics.names) for which a lower value is better.
LOWER_IS_BETTER = frozenset({"eer", "accuracy_std", "accuracy_sem"})


def metric_kind(metric: str) -> str | None:
    """The kind of the longest tail of ``metric`` that is a metric name (``val_cfp_fp_eer`` -> ``"eer"``), or None."""
    parts = metric.split("_")
    for i in range(len(parts)):
        parsed = names.parse("_".join(parts[i:]))
        if parsed is not None:
            return parsed.kind
    return None


def metric_mode(metric: str, mode: str = "") -> str:
    """``"max"`` or ``"min"``: ``mode`` when given (``run.keep_best_mode``), else inferred from the metric's kind."""
    if mode:
        if mode not in MODES:
            raise ValueError(f"run.keep_best_mode={mode!r}: expected 'max' or 'min'")
        return mode
    kind = metric_kind(metric)
    if kind is None or kind == "xnorm":
        raise ValueError(f"run.keep_best={metric!r}: cannot tell whether higher or lower is better (not an "
                         "accuracy, tar@far, eer, auc or rank metric); set run.keep_best_mode=max or min")
    return "min" if kind in LOWER_IS_BETTER else "max"


@dataclass
class BestTracker:
    """The best value of ``metric`` so far (``mode`` "max" or "min") and the step it was reached at."""

    metric: str
    mode: str
    value: float | None = None
    step: int | None = None
    history: list[list[float]] = field(default_factory=list)

    @classmethod
    def from_run_config(cls, run: Mapping[str, Any]) -> BestTracker | None:
        """The tracker of a recipe's ``[run]`` table, or None when ``keep_best`` is empty."""
        metric = str(run.get("keep_best", "") or "")
        if not metric:
            return None
        return cls(metric, metric_mode(metric, str(run.get("keep_best_mode", "") or "")))

    def update(self, step: int, metrics: Mapping[str, Any]) -> bool:
        """Whether ``metrics[self.metric]`` improves strictly on the best so far (then it becomes the best).

        A metric missing from ``metrics`` is a ValueError naming the metrics that are there.
        """
        if self.metric not in metrics:
            there = ", ".join(sorted(metrics)) or "none"
            raise ValueError(f"run.keep_best={self.metric!r}: the validation reports no such metric; it reports: "
                             f"{there}")
        value = float(metrics[self.metric])
        if math.isnan(value):
            return False
        if self.value is not None and not (value > self.value if self.mode == "max" else value < self.value):
            return False
        self.value, self.step = value, int(step)
        self.history.append([int(step), value])
        return True

    def record(self) -> dict[str, Any]:
        """The JSON record of ``best.json``."""
        return {"metric": self.metric, "mode": self.mode, "value": self.value, "step": self.step,
                "checkpoint": BEST, "history": self.history}

    def write(self, out: Path) -> Path:
        """``out/best.json``, atomically."""
        return atomic_write_bytes(Path(out) / BEST_RECORD, (json.dumps(self.record(), indent=1) + "\n").encode())

    def restore(self, out: Path) -> None:
        """Take the best so far from ``out/best.json`` (a resumed run); nothing when the file is absent."""
        path = Path(out) / BEST_RECORD
        if not path.is_file():
            return
        try:
            rec = json.loads(path.read_text())
            metric, mode = rec["metric"], rec["mode"]
            value, step, history = rec["value"], rec["step"], rec.get("history", [])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a best-checkpoint record ({exc})") from exc
        if (metric, mode) != (self.metric, self.mode):
            raise ValueError(f"{path}: keeps the best by {metric!r} ({mode}), this run by {self.metric!r} "
                             f"({self.mode}); resume with the same run.keep_best")
        self.value = None if value is None else float(value)
        self.step = None if step is None else int(step)
        self.history = [list(h) for h in history]
