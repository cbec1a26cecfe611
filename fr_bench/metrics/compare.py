"""Paired comparison of two models scored on the SAME pairs / probes.

- ``mcnemar``: exact McNemar test on per-item correctness (did model A and model B get item i right?).
- ``paired_bootstrap_difference``: bootstrap interval of ``TAR_A@FAR - TAR_B@FAR``, each replicate resampling the
  same units (subjects) for both models, so the correlation between the two models' errors is kept.
- ``paired_accuracy_difference``: the same for a pair accuracy (or any per-item success rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from fr_bench.metrics._checks import check_binary, check_level, check_scores_labels, to_numpy
from fr_bench.metrics._pairs import unit_codes
from fr_bench.metrics.uncertainty import (
    Interval,
    draw_unit_weights,
    per_unit_counts,
    percentile_interval,
    rate_replicates,
    tar_replicates,
)

__all__ = ["McNemarResult", "mcnemar", "paired_accuracy_difference", "paired_bootstrap_difference"]


@dataclass(frozen=True)
class McNemarResult:
    """``b``: items A got right and B wrong; ``c``: items A got wrong and B right; ``statistic = min(b, c)``;
    ``pvalue``: exact two-sided binomial p-value of the discordant split under H0 (p = 1/2)."""

    b: int
    c: int
    statistic: int
    pvalue: float
    method: str = "exact-binomial"


def mcnemar(correct_a: Any, correct_b: Any) -> McNemarResult:
    """Exact McNemar test: under H0 (equal error rates) the ``n = b + c`` discordant items split as
    Binomial(n, 1/2); ``p = min(1, 2 * P(X <= min(b, c)))`` (the two-sided binomial test, symmetric case);
    ``p = 1`` when there is no discordant item."""
    a = check_binary(correct_a, "correct_a").reshape(-1)
    bb = check_binary(correct_b, "correct_b").reshape(-1)
    if a.shape != bb.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be non-empty and of one length, got {a.size}, {bb.size}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n = b + c
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))
    return McNemarResult(b, c, min(b, c), p)


def paired_bootstrap_difference(scores_a: Any, scores_b: Any, labels: Any, unit_a: Any, unit_b: Any | None = None,
                                *, far: float = 1e-4, convention: str = "strict", n_boot: int = 1000,
                                level: float = 0.95, seed: int | None = 0, unit: str = "subject") -> Interval:
    """Bootstrap interval of ``TAR_A@far - TAR_B@far`` for two models scored on the same pairs.

    ``labels``, ``unit_a``, ``unit_b``: as in ``uncertainty.bootstrap_tar_at_far`` (shared by both models). Each
    replicate draws one set of unit multiplicities and evaluates both models with it; the interval is the
    percentile interval of the replicate differences; ``point`` is the observed difference. An interval that
    excludes 0 means the difference is significant at ``1 - level`` (two-sided).
    """
    check_level(level, n_boot)
    sa, _ = check_scores_labels(scores_a, labels)
    sb, _ = check_scores_labels(scores_b, labels)
    if sa.shape != sb.shape:
        raise ValueError(f"the two models must be scored on the same pairs: {sa.size} vs {sb.size} scores")
    _, _, n_units = unit_codes(unit_a, unit_b, sa.size)
    # row 0: all ones (the point); rows 1..: one shared draw for both models
    w = np.vstack([np.ones((1, n_units), np.int32), draw_unit_weights(n_units, n_boot, seed=seed)])
    diff = (tar_replicates(scores_a, labels, unit_a, unit_b, w, fars=[far], convention=convention)[0]
            - tar_replicates(scores_b, labels, unit_a, unit_b, w, fars=[far], convention=convention)[0])
    return percentile_interval(float(diff[0]), diff[1:], level=level, unit=unit)


def paired_accuracy_difference(correct_a: Any, correct_b: Any, units: Any | None = None, *, n_boot: int = 1000,
                               level: float = 0.95, seed: int | None = 0, unit: str = "pair") -> Interval:
    """Bootstrap interval of ``accuracy_A - accuracy_B`` over the same items (pairs, probes), resampling ``units``
    (default: each item its own unit; or folds / subjects, one per item). A replicate's accuracy is correct items
    over items with the drawn multiplicities, identical weights for both models."""
    check_level(level, n_boot)
    a = check_binary(correct_a, "correct_a").reshape(-1)
    b = check_binary(correct_b, "correct_b").reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be non-empty and of one length, got {a.size}, {b.size}")
    u = np.arange(a.size) if units is None else to_numpy(units, "units").reshape(-1)
    _, succ_a, trials = per_unit_counts(a, u)
    _, succ_b, _ = per_unit_counts(b, u)
    w = draw_unit_weights(trials.size, n_boot, seed=seed)
    reps = rate_replicates(succ_a, trials, w) - rate_replicates(succ_b, trials, w)
    return percentile_interval(float((succ_a.sum() - succ_b.sum()) / trials.sum()), reps, level=level, unit=unit)
