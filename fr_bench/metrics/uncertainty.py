"""Bootstrap confidence intervals for the headline numbers: TAR@FAR, EER, accuracy, rank-1, TPIR@FPIR.

The bootstrap resamples the INDEPENDENT unit, not the pair: on IJB-B/C and MegaFace the pairs of one subject are
correlated, so a replicate draws subjects with replacement; on the 10-fold sets it draws folds or pairs (caller's
choice, see ``bootstrap_accuracy``). A replicate is a row of unit multiplicities ``w_u`` (multinomial counts, the
number of times unit ``u`` was drawn, sum = number of units; :func:`draw_unit_weights`), never a re-sampled copy
of the data. Pair weights (module ``_replicates``): ``w_a * w_b`` for a pair between units ``a != b``, ``w_a`` for a
pair within one unit; every replicate statistic is the point estimate's definition on integer-weighted counts.

Two layers, both public:
- ``bootstrap_*``: draw the weights, compute the replicates and the point, return an :class:`Interval`.
- ``*_replicates(..., weights)``: the replicate values for weights the caller drew, so that several statistics
  (e.g. the galleries of IJB 1:N and their mean) share one draw; :func:`percentile_interval` turns them into an
  :class:`Interval`. Weight columns are the units' sorted distinct values (``numpy.unique`` order).

Interval: percentile (``low``/``high`` = quantiles ``(1-level)/2`` and ``(1+level)/2`` of the replicates, numpy's
linear interpolation; replicates where the statistic is undefined, e.g. no genuine pair drawn, are left out).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fr_bench.metrics import _replicates as _rep
from fr_bench.metrics._checks import check_binary, check_level, to_numpy
from fr_bench.metrics._common import dense_codes
from fr_bench.metrics._pairs import prepare
from fr_bench.metrics._roc import DEFAULT_FARS

__all__ = [
    "Interval",
    "bootstrap_accuracy",
    "bootstrap_eer",
    "bootstrap_rate",
    "bootstrap_tar_at_far",
    "bootstrap_tpir_at_fpir",
    "draw_unit_weights",
    "per_unit_counts",
    "percentile_interval",
    "rate_replicates",
    "tar_replicates",
    "tpir_replicates",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval ``[low, high]`` at ``level``."""

    point: float
    low: float
    high: float
    level: float
    n_boot: int
    unit: str
    method: str = "percentile"


# ---------------------------------------------------------------------------------------------- weights, intervals


def draw_unit_weights(n_units: int, n_boot: int, *, seed: int | None = 0) -> np.ndarray:
    """``(n_boot, n_units)`` int32 multiplicities: each row counts ``n_units`` uniform draws of a unit with
    replacement (a multinomial draw), seeded with numpy's default generator."""
    if n_units < 1 or n_boot < 1:
        raise ValueError(f"need n_units >= 1 and n_boot >= 1, got {n_units} and {n_boot}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(n_boot, n_units), dtype=np.int64)
    draws += np.arange(n_boot, dtype=np.int64)[:, None] * n_units
    return np.bincount(draws.ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units).astype(np.int32)


def _check_weights(weights: Any, n_units: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer) or (w < 0).any():
        raise ValueError(f"weights must be a 2-D (replicates x units) array of non-negative integers, got "
                         f"shape {w.shape} dtype {w.dtype}")
    if w.shape[1] != n_units:
        raise ValueError(f"weights has {w.shape[1]} unit columns for {n_units} units")
    return w


def percentile_interval(point: float, replicates: Any, *, level: float, unit: str) -> Interval:
    """The percentile interval of ``point`` from bootstrap ``replicates`` (non-finite replicates, where the statistic
    is undefined, are left out; ``n_boot`` counts them all). NaN bounds when ``point`` is not finite or no replicate
    is."""
    check_level(level, 1)
    reps_all = np.asarray(replicates, dtype=np.float64).reshape(-1)
    reps = reps_all[np.isfinite(reps_all)]
    if reps.size == 0 or not math.isfinite(point):
        return Interval(float(point), math.nan, math.nan, level, int(reps_all.size), unit)
    low, high = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(point), float(low), float(high), level, int(reps_all.size), unit)


def per_unit_counts(success: Any, units: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unit values, successes per unit, trials per unit)`` from one boolean outcome per trial (e.g. per probe);
    units sorted as ``numpy.unique`` sorts them (the weight columns of :func:`rate_replicates`)."""
    ok = check_binary(success, "success").reshape(-1)
    u = to_numpy(units, "units").reshape(-1)
    if u.shape != ok.shape:
        raise ValueError(f"success and units differ in length: {ok.shape[0]} vs {u.shape[0]}")
    values, (inv,) = dense_codes(u)
    return values, np.bincount(inv, weights=ok, minlength=values.size), np.bincount(inv, minlength=values.size)


# ------------------------------------------------------------------------------------------------------ rates


def _rate_inputs(successes: Any, trials: Any) -> tuple[np.ndarray, np.ndarray]:
    succ = to_numpy(successes, "successes").reshape(-1).astype(np.float64)
    tri = to_numpy(trials, "trials").reshape(-1).astype(np.float64)
    if succ.shape != tri.shape or succ.size == 0:
        raise ValueError(f"successes and trials must be non-empty and of one length, got {succ.size}, {tri.size}")
    if (tri < 0).any() or (succ < 0).any() or (succ > tri).any():
        raise ValueError("need 0 <= successes <= trials for every unit")
    if tri.sum() == 0:
        raise ValueError("no trials at all")
    return succ, tri


def rate_replicates(successes: Any, trials: Any, weights: Any) -> np.ndarray:
    """``(R,)`` replicate rates ``sum(w_u s_u) / sum(w_u t_u)`` (the ratio of weighted sums) for unit multiplicities
    ``weights`` (R x units, columns in the order of ``successes``/``trials``); NaN where a replicate has no
    trial."""
    succ, tri = _rate_inputs(successes, trials)
    w = _check_weights(weights, succ.size).astype(np.float64)
    den = w @ tri
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (w @ succ) / den, np.nan)


def bootstrap_rate(successes: Any, trials: Any, *, n_boot: int = 1000, level: float = 0.95, seed: int | None = 0,
                   unit: str = "subject") -> Interval:
    """Bootstrap interval of a pooled rate ``sum(successes) / sum(trials)`` over units (e.g. rank-1 by subject:
    correct searches and searches per subject, from ``per_unit_counts``); replicates: :func:`rate_replicates`."""
    check_level(level, n_boot)
    succ, tri = _rate_inputs(successes, trials)
    reps = rate_replicates(succ, tri, draw_unit_weights(succ.size, n_boot, seed=seed))
    return percentile_interval(float(succ.sum() / tri.sum()), reps, level=level, unit=unit)


def bootstrap_accuracy(correct: Any, folds: Any | None = None, *, unit: str = "pair", n_boot: int = 1000,
                       level: float = 0.95, seed: int | None = 0) -> Interval:
    """Bootstrap interval of a pair accuracy from per-pair correctness (each pair judged with its fold's threshold).

    ``unit="pair"``: pairs resampled independently (pairs of the 10-fold sets are treated as independent).
    ``unit="fold"``: folds resampled (``folds``: the fold of each pair), thresholds kept fixed, accuracy = correct
    pairs / pairs in the replicate; with 10 folds the interval is coarse (at most 10 distinct fold values).
    ``unit="subject"`` or any other name: ``folds`` gives the unit of each pair.
    """
    ok = check_binary(correct, "correct").reshape(-1)
    if unit == "pair":
        units = np.arange(ok.size)
    else:
        if folds is None:
            raise ValueError(f"unit={unit!r} needs `folds`: the {unit} of each pair")
        units = to_numpy(folds, "folds").reshape(-1)
    _, succ, tri = per_unit_counts(ok, units)
    return bootstrap_rate(succ, tri, n_boot=n_boot, level=level, seed=seed, unit=unit)


# --------------------------------------------------------------------------------------------- TAR@FAR, TPIR@FPIR


def tar_replicates(scores: Any, labels: Any, unit_a: Any, unit_b: Any | None, weights: Any, *,
                   fars: Sequence[float] = DEFAULT_FARS, convention: str = "strict") -> np.ndarray:
    """``(len(fars), R)`` TAR@FAR of each replicate row of ``weights`` (R x units; columns: the sorted distinct
    values of ``unit_a`` and ``unit_b`` together), on the weighted ROC under ``convention`` (``TAR_CONVENTIONS``;
    "nearest-reference" gives the "nearest" replicates). NaN where a replicate cannot resolve the target
    (``floor(far * weighted n_impostor) < 1``). A row of ones gives the point estimate (equal to ``tar_at_far``).
    """
    d, device = prepare(scores, labels, unit_a, unit_b)
    w = _check_weights(weights, d.n_units)
    return _rep.tar_replicates(d, w, [float(f) for f in fars], convention, device)


def bootstrap_tar_at_far(scores: Any, labels: Any, unit_a: Any, unit_b: Any | None = None, *,
                         fars: Sequence[float] = DEFAULT_FARS, convention: str = "strict", n_boot: int = 1000,
                         level: float = 0.95, seed: int | None = 0, unit: str = "subject") -> dict[float, Interval]:
    """Bootstrap intervals of TAR@FAR, resampling units (subjects) with replacement.

    ``unit_a``/``unit_b``: the unit (subject id) of each side of each pair; ``unit_b=None`` makes each pair's unit
    ``unit_a`` (e.g. ``unit_a = arange(n)`` resamples pairs). ``convention``: any of ``TAR_CONVENTIONS`` (all
    exact; strict and interpolated vectorised over replicates). The point is the same kernel with all weights 1
    (equal to ``verification.tar_at_far``). Targets with ``floor(far * n_impostor) < 1`` are unresolvable: NaN
    interval and a warning. Memory: ``n_boot x n_units`` weights plus chunks of about 2**25 slice elements.
    """
    check_level(level, n_boot)
    d, device = prepare(scores, labels, unit_a, unit_b)
    fars = [float(f) for f in fars]
    point = _rep.tar_replicates(d, np.ones((1, d.n_units), np.int32), fars, convention, device)[:, 0]
    reps = _rep.tar_replicates(d, draw_unit_weights(d.n_units, n_boot, seed=seed), fars, convention, device)
    bad = [f for f, p in zip(fars, point) if math.isnan(p)]
    if bad:
        warnings.warn(f"TAR@FAR not resolvable with {d.n_imp} impostor pairs for FAR {bad}: NaN interval",
                      stacklevel=2)
    return {f: percentile_interval(p, reps[i], level=level, unit=unit) for i, (f, p) in enumerate(zip(fars, point))}


def _tpir_scores(search: Any, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Open-set searches as verification scores: non-mated top scores play the impostors, mated probes the genuine
    pairs, a mate found beyond ``rank`` scored below every non-mated score (never accepted)."""
    mated = check_binary(search.mated, "search.mated").reshape(-1)
    if mated.all() or not mated.any():
        raise ValueError("TPIR@FPIR needs both mated and non-mated probes")
    floor_score = float(np.min(search.top_score)) - 1.0
    hit = mated & (np.asarray(search.mate_rank) <= rank)
    return np.where(mated, np.where(hit, search.mate_score, floor_score), search.top_score), mated


def tpir_replicates(search: Any, units: Any, weights: Any, *, fpirs: Sequence[float] = (1e-3, 1e-2, 1e-1),
                    rank: int = 1) -> np.ndarray:
    """``(len(fpirs), R)`` TPIR@FPIR (NIST, ``identification.tpir_at_fpir``) of one gallery's ``OpenSetSearch``
    for each replicate row of ``weights`` (R x units; columns: the sorted distinct ``units``, one per probe):
    the strict TAR@FAR kernel on :func:`_tpir_scores`."""
    scores, mated = _tpir_scores(search, rank)
    return tar_replicates(scores, mated, units, None, weights, fars=fpirs, convention="strict")


def bootstrap_tpir_at_fpir(search: Any, units: Any, *, fpirs: Sequence[float] = (1e-3, 1e-2, 1e-1), rank: int = 1,
                           n_boot: int = 1000, level: float = 0.95, seed: int | None = 0) -> dict[float, Interval]:
    """Bootstrap intervals of open-set TPIR@FPIR (NIST definition, ``identification.tpir_at_fpir``), resampling
    probe subjects: ``search`` is an ``identification.OpenSetSearch``, ``units`` the subject of each probe."""
    scores, mated = _tpir_scores(search, rank)
    return bootstrap_tar_at_far(scores, mated, units, None, fars=fpirs, convention="strict", n_boot=n_boot,
                                level=level, seed=seed, unit="subject")


# ------------------------------------------------------------------------------------------------------------ EER


def bootstrap_eer(scores: Any, labels: Any, unit_a: Any, unit_b: Any | None = None, *, n_boot: int = 1000,
                  level: float = 0.95, seed: int | None = 0, unit: str = "subject") -> Interval:
    """Bootstrap interval of the EER (``verification.eer``'s definition on the weighted ROC), resampling units.

    Works on the full sorted score list, replicates in chunks: O(n_boot x n_pairs) time. Meant for 10-fold sets and
    medium sets; on IJB-sized sets prefer TAR@FAR.
    """
    check_level(level, n_boot)
    d, device = prepare(scores, labels, unit_a, unit_b)
    point = float(_rep.eer_replicates(d, np.ones((1, d.n_units), np.int32), device)[0])
    reps = _rep.eer_replicates(d, draw_unit_weights(d.n_units, n_boot, seed=seed), device)
    return percentile_interval(point, reps, level=level, unit=unit)
