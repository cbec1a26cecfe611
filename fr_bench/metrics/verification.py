"""1:1 verification metrics: ROC, TAR@FAR (operating points), EER, AUC, and the reports protocols use.

Scores: higher = more similar. Labels: 1 genuine (same identity), 0 impostor. Inputs: 1-D numpy arrays or torch
tensors (CPU or CUDA). Every number is read from the one ROC/count kernel (``_roc``), whose docstring defines the
TAR@FAR conventions (``TAR_CONVENTIONS``) and resolvability. Pair accuracy: ``accuracy``; MagFace's angular
variant: ``angular``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fr_bench.metrics._common import ToDict
from fr_bench.metrics._roc import (
    DEFAULT_FARS,
    TAR_CONVENTIONS,
    OperatingPoint,
    area_under_curve,
    canonical_tar_convention,
    eer_from_counts,
    rates_with_leading_point,
    read_operating_points,
    roc_counts,
    thresholds_with_leading_point,
    warn_unresolvable,
)
from fr_bench.metrics.accuracy import DEFAULT_ACCURACY, KFoldResult, canonical_accuracy_convention, pair_accuracy

__all__ = ["DEFAULT_FARS", "TAR_CONVENTIONS", "OperatingPoint", "RocReport", "VerificationReport", "downsample_roc",
           "eer", "operating_points", "roc", "roc_report", "tar_at_far", "verification_report"]

@dataclass(frozen=True)
class VerificationReport(ToDict):
    """Everything a 1:1 verification benchmark reports, with the conventions used named.

    ``auc``: area under the full ROC (trapezoids, exact integer sum; equals scikit-learn ``roc_auc_score``).
    ``eer``: see ``eer``. ``tar_at_far`` / ``operating_points``: see ``operating_points`` (``tar_convention``).
    ``accuracy``: ``pair_accuracy`` under ``accuracy_convention``, or None when not computed.
    """

    n_genuine: int
    n_impostor: int
    auc: float
    eer: float
    tar_at_far: dict[float, float]
    operating_points: dict[float, OperatingPoint]
    accuracy: KFoldResult | None
    tar_convention: str
    accuracy_convention: str | None


# ------------------------------------------------------------------------------------------------------------ ROC


def roc(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC ``(far, tar, thresholds)`` over every distinct score (ties grouped), descending thresholds.

    Point ``k``: accept iff ``score >= thresholds[k]``; ``far[k] = fps[k] / n_impostor``, ``tar[k] = tps[k] /
    n_genuine``. Starts with the point ``(0, 0)`` at threshold ``+inf``. Identical to scikit-learn
    ``roc_curve(labels, scores, drop_intermediate=False)``.
    """
    fps, tps, thr = roc_counts(scores, labels)
    return rates_with_leading_point(fps, int(fps[-1])), rates_with_leading_point(tps, int(tps[-1])), \
        thresholds_with_leading_point(thr)


def operating_points(scores: Any, labels: Any, *, fars: Sequence[float] = DEFAULT_FARS,
                     convention: str = "strict") -> dict[float, OperatingPoint]:
    """ROC operating point at each target FAR under ``convention`` ("strict", "nearest"/"insightface",
    "interpolated", "nearest-reference"; definitions in ``_roc``'s docstring and ``TAR_CONVENTIONS``).

    Returns ``{target far: OperatingPoint}`` with the TAR, the FAR actually realised and the threshold used.
    Targets with ``floor(far * n_impostor) == 0`` are unresolvable: NaN and one warning listing them.
    """
    fps, tps, thr = roc_counts(scores, labels)
    points = read_operating_points(fps, tps, thr, int(fps[-1]), int(tps[-1]), fars, convention)
    warn_unresolvable(points)
    return points


def tar_at_far(scores: Any, labels: Any, *, fars: Sequence[float] = DEFAULT_FARS,
               convention: str = "strict") -> dict[float, float]:
    """``{target far: TAR}``: the ``tar`` of ``operating_points`` (same conventions, same NaN + warning)."""
    return {f: p.tar for f, p in operating_points(scores, labels, fars=fars, convention=convention).items()}


def eer(scores: Any, labels: Any) -> float:
    """Equal error rate: the rate where FNR (= 1 - TAR) equals FAR on the full ROC, linear interpolation between
    the two ROC points where ``FNR - FAR`` changes sign (exact value if a point has FNR == FAR)."""
    fps, tps, _ = roc_counts(scores, labels)
    return eer_from_counts(fps, tps)


# ------------------------------------------------------------------------------------------------------ the report


def verification_report(scores: Any, labels: Any, *, fars: Sequence[float] = DEFAULT_FARS,
                        tar_convention: str = "strict", accuracy_convention: str | None = DEFAULT_ACCURACY,
                        n_folds: int | None = 10) -> VerificationReport:
    """Counts, AUC, EER, TAR@FAR (``tar_convention``) and pair accuracy (``accuracy_convention``, default the one
    default of ``pair_accuracy``; skipped, None, when ``accuracy_convention`` or ``n_folds`` is None or there are
    fewer pairs than folds), from one sort."""
    fps, tps, thr = roc_counts(scores, labels)
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    points = read_operating_points(fps, tps, thr, n_imp, n_gen, fars, tar_convention)
    warn_unresolvable(points)
    accuracy = None
    acc_name = None
    if accuracy_convention is not None:
        acc_name = canonical_accuracy_convention(accuracy_convention)
        if acc_name == "best-threshold" or (n_folds is not None and n_imp + n_gen >= n_folds):
            accuracy = pair_accuracy(scores, labels, convention=acc_name,
                                     n_folds=n_folds if n_folds is not None else 10)
    return VerificationReport(n_gen, n_imp, area_under_curve(fps, tps), eer_from_counts(fps, tps),
                              {f: p.tar for f, p in points.items()}, points, accuracy,
                              canonical_tar_convention(tar_convention), acc_name)


@dataclass(frozen=True)
class RocReport(ToDict):
    """The full ROC and the numbers read from it, from ONE sort of the scores (see ``roc_report``).

    ``far``, ``tar``, ``thresholds``: exactly ``roc(scores, labels)`` (leading ``(0, 0)`` point at ``+inf``).
    ``auc``, ``eer``: as in ``VerificationReport``. ``operating_points``: ``{target far: OperatingPoint}`` under
    ``tar_convention`` (unresolvable targets: ``resolvable=False``, NaN values).
    """

    n_genuine: int
    n_impostor: int
    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float
    eer: float
    operating_points: dict[float, OperatingPoint]
    tar_convention: str


def roc_report(scores: Any, labels: Any, *, fars: Sequence[float] = DEFAULT_FARS, tar_convention: str = "strict",
               warn: bool = True) -> RocReport:
    """ROC, AUC, EER and TAR@FAR (``tar_convention``) from one sort of the scores: what a verification protocol
    reports and plots, without sorting 15.66M IJB-C scores twice (``verification_report`` + ``roc``).

    Same definitions as ``roc``, ``eer``, ``operating_points`` and ``VerificationReport.auc``. ``warn=False``
    leaves unresolvable targets to the caller (they still come back NaN with ``resolvable=False``).
    """
    fps, tps, thr = roc_counts(scores, labels)
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    points = read_operating_points(fps, tps, thr, n_imp, n_gen, fars, tar_convention)
    if warn:
        warn_unresolvable(points)
    return RocReport(n_gen, n_imp, rates_with_leading_point(fps, n_imp), rates_with_leading_point(tps, n_gen),
                     thresholds_with_leading_point(thr), area_under_curve(fps, tps), eer_from_counts(fps, tps), points,
                     canonical_tar_convention(tar_convention))


# ------------------------------------------------------------------------------------------- ROC for storage


def downsample_roc(far: Any, tar: Any, thresholds: Any = None, *, max_points: int = 1000) -> dict[str, np.ndarray]:
    """At most ``max_points`` points of an ROC, spread evenly in log-FAR, for ``details["roc"]``.

    ``far`` must be non-decreasing (as from ``sklearn.metrics.roc_curve`` or :func:`roc`), ``tar`` and
    ``thresholds`` of the same length. Kept: the first and the last point, the last point at FAR = 0 (the best
    TAR with no false accept; FAR 0 cannot be drawn on a log axis), and for each of ``max_points - 3`` targets
    spaced evenly in log10(FAR) between the smallest positive FAR and the largest, the *last* point whose FAR does
    not exceed the target -- the upper corner of the ROC staircase, i.e. the strict TAR at that FAR. Duplicates are
    merged, so fewer points may come back; a curve that already has ``<= max_points`` points is returned whole.
    Returns ``{"far", "tar"}`` (+ ``"thresholds"`` when given) as float64 arrays.
    """
    far = np.asarray(far, dtype=np.float64).ravel()
    tar = np.asarray(tar, dtype=np.float64).ravel()
    thr = None if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if far.shape != tar.shape or (thr is not None and thr.shape != far.shape):
        raise ValueError(
            f"downsample_roc: far, tar (and thresholds) must have one length, got {far.size}, {tar.size}"
            + ("" if thr is None else f", {thr.size}")
        )
    if far.size == 0:
        raise ValueError("downsample_roc: empty ROC")
    if max_points < 4:
        raise ValueError(f"downsample_roc: max_points must be >= 4, got {max_points}")
    if np.isnan(far).any() or np.any(far[1:] < far[:-1]):
        raise ValueError("downsample_roc: far must be non-decreasing and free of NaN (sort the ROC by FAR first)")
    n = far.size
    if n <= max_points:
        keep = np.arange(n)
    else:
        picks = [np.array([0, n - 1])]
        zero = np.searchsorted(far, 0.0, side="right") - 1  # last point with FAR <= 0
        if zero >= 0:
            picks.append(np.array([zero]))
        first_positive = zero + 1  # far is non-decreasing: no mask over the whole curve
        if first_positive < n:
            lo = far[first_positive]
            targets = (np.geomspace(lo, far[-1], max_points - 3) if far[-1] > lo
                       else far[first_positive:first_positive + 1])
            picks.append(np.searchsorted(far, targets, side="right") - 1)
        keep = np.unique(np.concatenate(picks))
        keep = keep[keep >= 0]
    out = {"far": far[keep], "tar": tar[keep]}
    if thr is not None:
        out["thresholds"] = thr[keep]
    return out

