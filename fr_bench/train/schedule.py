"""The learning-rate schedule shared by every recipe: linear warm-up, then polynomial or cosine decay to zero.

For update ``t`` (0-based) of ``total`` with ``w`` warm-up steps and base rate ``lr``:

* warm-up, ``t < w``: ``lr * (t + 1) / w``;
* ``"poly"`` (arcface_torch ``PolyScheduler``): ``lr * (1 - (t - w) / (total - w)) ** power``;
* ``"cosine"``: ``lr * (1 + cos(pi * (t - w) / (total - w))) / 2``.

The schedule is a pure function of the step, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

SCHEDULES = ("poly", "cosine")


def warmup_steps(total: int, fraction: float) -> int:
    """Warm-up length: ``round(fraction * total)`` steps, at most ``total - 1``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"optim.warmup_fraction must be in [0, 1), got {fraction}")
    return min(int(round(fraction * total)), max(total - 1, 0))


def lr_at(step: int, total: int, lr: float, *, warmup: int = 0, kind: str = "poly", power: float = 2.0) -> float:
    """The learning rate of update ``step`` (0-based) of ``total`` (see the module docstring)."""
    if kind not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {kind!r}")
    if total <= 0 or not 0 <= step < total:
        raise ValueError(f"step {step} outside a schedule of {total} steps")
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / (total - warmup)
    if kind == "poly":
        return lr * (1.0 - progress) ** power
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
