"""Input validation shared by the metric functions: one clear ``ValueError`` per kind of bad input."""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a dependency, but metrics must also work on plain numpy
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]


def is_torch(x: Any) -> bool:
    """True if ``x`` is a torch tensor."""
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """A numpy view of ``x`` (numpy array, list or CPU/CUDA torch tensor)."""
    if is_torch(x):
        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16: widen (exactly) first
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def check_scores_labels(scores: Any, labels: Any, *, keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate verification input; return ``(scores float64, labels bool)`` as 1-D numpy arrays (float32 scores
    stay float32 with ``keep_float32``: no widened copy where the caller only sorts or compares them).

    Raises ``ValueError`` for empty input, mismatched lengths, labels outside {0, 1}, NaN/inf scores, and for a set
    with no genuine or no impostor pairs.
    """
    s = to_numpy(scores, "scores")
    y = to_numpy(labels, "labels")
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.size == 0:
        raise ValueError("scores is empty: nothing to evaluate")
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} scores, {y.shape[0]} labels")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    if not np.isfinite(s).all():
        n_bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"scores contain {n_bad} NaN or inf values; remove or fix them before evaluating")
    yb = check_binary(y, "labels", meaning="1 (genuine) or 0 (impostor)")
    n_gen = int(yb.sum())
    if n_gen == 0:
        raise ValueError("no genuine pairs (label 1): a verification metric needs both classes")
    if n_gen == yb.size:
        raise ValueError("no impostor pairs (label 0): a verification metric needs both classes")
    if keep_float32 and s.dtype == np.float32:
        return s, yb
    return s.astype(np.float64, copy=False), yb


def check_binary(x: Any, name: str, meaning: str = "0/1 or booleans") -> np.ndarray:
    """``x`` as a boolean numpy array; ``ValueError`` unless every value is 0, 1, False or True (so that a score
    array passed where labels or outcomes belong, e.g. swapped arguments, is refused instead of read as booleans)."""
    a = to_numpy(x, name)
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be {meaning}, got dtype {a.dtype}")
    bad = ~np.isin(a, (0, 1))
    if bad.any():
        raise ValueError(f"{name} must be {meaning}; found {np.unique(a[bad])[:5].tolist()} "
                         f"(were two arguments swapped?)")
    return a.astype(bool)


def check_level(level: float, n_boot: int) -> None:
    """``ValueError`` unless ``0 < level < 1`` and ``n_boot >= 1`` (bootstrap interval arguments)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
