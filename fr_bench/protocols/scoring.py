"""The one verification-scoring path of every 1:1 protocol (pair sets, IJB-B/C 1:1, K-FACE; the demo's pairs).

:func:`score_verification` turns per-pair scores and labels (and the resampling unit of each pair side) into the
:class:`~fr_bench.protocols.base.ProtocolResult` pieces, all from :mod:`fr_bench.metrics`, sorting the scores once
(:func:`fr_bench.metrics.verification.roc_report`):

* ``metrics``: ``<prefix>tar@far=<f>`` (names from :func:`far_name`), ``<prefix>eer``, ``<prefix>auc``;
* ``operating_points``: per ``tar@far``, the realised point (``target_far``, ``tar``, ``far`` realised,
  ``threshold``, ``convention``, counts, ``resolvable``); an unresolvable target is NaN and flagged;
* ``details``: ``<prefix>roc`` = ``{"far", "tar", "threshold", "downsampled_from"}`` (at most
  :data:`ROC_POINTS` points by :func:`fr_bench.metrics.verification.downsample_roc`), ``<prefix>distribution``
  (``distribution_overlap(...).to_dict()``), ``<prefix>counts`` (genuine, impostor);
* ``intervals`` when ``ci`` is a level: percentile bootstrap intervals (``fr_bench.metrics.uncertainty``) of each
  resolvable TAR@FAR and of the EER, resampling :class:`Units`; each interval is
  ``{"low", "high", "level", "unit", "n_boot", "method"}`` (:func:`interval_dict`). ``ci=None`` costs nothing.

Per-pair data (``result.scores.pairs``, kept for ``frbench compare`` and filed in HDF5 by the runner): a
:class:`~fr_bench.results.PairScores` built by :func:`pair_record`, one entry per scored pair in the protocol's pair
order, identical for two models evaluated on the same data except ``scores`` and ``correct``: ``unit_a``/``unit_b``
are the resampling unit of each side (a code per subject / identity / template, or the pair index when pairs are
the unit), ``unit_name`` names it; ``folds`` (k-fold accuracy protocols) is the fold whose threshold judged the pair
(0 everywhere for ``best-threshold``); ``correct`` (protocols with a pair accuracy) says the pair was classified
right by its fold's threshold (``correct[folds == f].mean()`` is fold ``f``'s accuracy): McNemar's input.
Protocol-specific per-pair extras (``PairScores.extra``) and the identification records
(:class:`~fr_bench.results.SearchScores`) are listed in each protocol's docstring.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fr_bench.metrics.names import far_name  # the one vocabulary of metric names (re-exported for protocols)
from fr_bench.results import PairScores, ProtocolResult

#: Most ROC points kept in ``details["roc"]`` (both ends and the strict staircase corners).
ROC_POINTS = 1000
#: The EER bootstrap costs O(n_boot x n_pairs); above this product it is skipped (flagged).
EER_BOOT_BUDGET = 2e8
#: Interval method recorded in every interval.
METHOD = "percentile bootstrap"


def op_dict(point: Any) -> dict[str, Any]:
    """An operating point (dataclass or mapping) as a plain dict."""
    if dataclasses.is_dataclass(point) and not isinstance(point, type):
        return dataclasses.asdict(point)
    return dict(point)


def interval_dict(interval: Any) -> dict[str, Any]:
    """A :class:`fr_bench.metrics.uncertainty.Interval` as the result-file interval."""
    return {"low": float(interval.low), "high": float(interval.high), "level": float(interval.level),
            "unit": str(interval.unit), "n_boot": int(interval.n_boot), "method": METHOD}


# ------------------------------------------------------------------------------------------------ resampling units


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense int32 codes 0..U-1 in sorted order of the distinct values (a lookup table for small ids: O(n))."""
    if values.size and np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() < (1 << 24):
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        return (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)[values]
    _, inv = np.unique(values, return_inverse=True)
    return inv.reshape(-1).astype(np.int32)


@dataclass(frozen=True)
class Units:
    """The bootstrap's independent unit for each side of each pair: ``a``/``b`` int32 codes, ``name`` (recorded as
    the interval's ``unit``), ``note`` (a flag a reader must see with the intervals, e.g. likely too narrow)."""

    a: np.ndarray
    b: np.ndarray
    name: str
    note: str | None = None

    @classmethod
    def per_pair(cls, n_pairs: int) -> Units:
        """Each pair its own unit (pairs resampled independently)."""
        idx = np.arange(n_pairs, dtype=np.int32)
        return cls(idx, idx, "pair")

    @classmethod
    def from_values(cls, values_a: Any, values_b: Any, name: str, note: str | None = None) -> Units:
        """Units from any comparable values (names, ids) of each side, coded over their union (sorted order)."""
        va, vb = np.asarray(values_a), np.asarray(values_b)
        if va.shape != vb.shape:
            raise ValueError(f"unit values of the two sides differ in length: {va.shape} vs {vb.shape}")
        codes = _codes(np.concatenate([va, vb]))
        return cls(codes[: va.size], codes[va.size:], name, note)


# ----------------------------------------------------------------------------------------------------- scoring


def score_verification(result: ProtocolResult, scores: np.ndarray, labels: np.ndarray, *, fars: Sequence[float],
                       convention: str, prefix: str = "", units: Units | None = None, ci: float | None = None,
                       n_boot: int = 1000, seed: int = 0, roc_points: int = ROC_POINTS) -> Any:
    """Fill ``result`` with TAR@FAR, EER, AUC, operating points, ROC, distribution, counts (and, with ``ci``,
    intervals resampling ``units``; pairs when ``units`` is None); see the module docstring. ``prefix``
    namespaces the keys (``""`` or ``"Q1/"``). Returns the :class:`~fr_bench.metrics.verification.RocReport`."""
    from fr_bench.metrics.distributions import distribution_overlap
    from fr_bench.metrics.verification import downsample_roc, roc_report

    labels_b = np.asarray(labels).astype(bool, copy=False)
    fars = tuple(float(f) for f in fars)
    report = roc_report(scores, labels_b, fars=fars, tar_convention=convention, warn=False)
    for far in fars:
        point = report.operating_points[far]
        name = f"{prefix}tar@far={far_name(far)}"
        result.operating_points[name] = op_dict(point)
        if not point.resolvable and point.flag and math.isfinite(point.tar):
            # a convention that reads an unresolvable target anyway (nearest-reference): the number, flagged
            result.metrics[name] = float(point.tar)
            result.flags.append(f"{name}: {point.flag}")
            continue
        result.metrics[name] = float(point.tar) if point.resolvable else math.nan
        if not point.resolvable:
            result.flags.append(f"{name}: not resolvable with {report.n_impostor:,} impostor pairs (needs at least "
                                f"{math.ceil(1 / far):,}); reported as NaN")
    result.metrics[f"{prefix}eer"] = float(report.eer)
    result.metrics[f"{prefix}auc"] = float(report.auc)
    roc = downsample_roc(report.far, report.tar, report.thresholds, max_points=roc_points)
    result.details[f"{prefix}roc"] = {"far": roc["far"], "tar": roc["tar"], "threshold": roc["thresholds"],
                                      "downsampled_from": int(report.far.size)}
    result.details[f"{prefix}distribution"] = distribution_overlap(scores[labels_b], scores[~labels_b]).to_dict()
    result.details.setdefault(f"{prefix}counts", {}).update(
        {"genuine": int(report.n_genuine), "impostor": int(report.n_impostor)})
    if ci is not None:
        resolvable = [f for f in fars if report.operating_points[f].resolvable and f < 1.0]
        units = units if units is not None else Units.per_pair(len(labels_b))
        intervals, flags = verification_intervals(scores, labels_b, units, fars=resolvable, convention=convention,
                                                  ci=ci, n_boot=n_boot, seed=seed)
        result.intervals.update({f"{prefix}{k}": v for k, v in intervals.items()})
        result.flags.extend(f"{prefix}{f}" if prefix else f for f in flags)
    return report


def verification_intervals(scores: np.ndarray, labels: np.ndarray, units: Units, *, fars: Sequence[float],
                           convention: str, ci: float, n_boot: int, seed: int
                           ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Bootstrap intervals of ``tar@far=<f>`` for each (resolvable) target and of ``eer``, resampling ``units``
    with one seed (every metric sees the same replicates). The EER is skipped above :data:`EER_BOOT_BUDGET`
    (``n_boot x n_pairs``), flagged. Returns ``(intervals, flags)``."""
    from fr_bench.metrics.uncertainty import bootstrap_eer, bootstrap_tar_at_far

    out: dict[str, dict[str, Any]] = {}
    flags = [units.note] if units.note else []
    if fars:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unresolvable targets were filtered out and are flagged already
            tars = bootstrap_tar_at_far(scores, labels, units.a, units.b, fars=fars, convention=convention,
                                        n_boot=n_boot, level=ci, seed=seed, unit=units.name)
        for f, interval in tars.items():
            out[f"tar@far={far_name(f)}"] = interval_dict(interval)
    if n_boot * len(labels) <= EER_BOOT_BUDGET:
        out["eer"] = interval_dict(bootstrap_eer(scores, labels, units.a, units.b, n_boot=n_boot, level=ci,
                                                 seed=seed, unit=units.name))
    else:
        flags.append(f"eer: no interval: the EER bootstrap costs O(n_boot x n_pairs) = {n_boot:,} x "
                     f"{len(labels):,}, above the {EER_BOOT_BUDGET:.0e} budget")
    return out, flags


def accuracy_interval(correct: np.ndarray, folds: np.ndarray | None, unit: str, *, ci: float, n_boot: int,
                      seed: int) -> dict[str, Any]:
    """Bootstrap interval of a pair accuracy from per-pair ``correct`` (thresholds fixed as fitted), resampling
    pairs (``unit="pair"``) or folds (``unit="fold"``, ``folds`` the fold of each pair)."""
    from fr_bench.metrics.uncertainty import bootstrap_accuracy

    if unit not in ("pair", "fold"):
        raise ValueError(f"accuracy interval unit must be 'pair' or 'fold', got {unit!r}")
    if unit == "fold" and (folds is None or np.unique(folds).size < 2):
        raise ValueError("accuracy_unit='fold' needs a k-fold accuracy convention (several folds)")
    return interval_dict(bootstrap_accuracy(correct, folds if unit == "fold" else None, unit=unit, n_boot=n_boot,
                                            level=ci, seed=seed))


def pair_record(scores: np.ndarray, labels: np.ndarray, units: Units, *, folds: np.ndarray | None = None,
                correct: np.ndarray | None = None, **extra: np.ndarray) -> PairScores:
    """The :class:`~fr_bench.results.PairScores` of a verification protocol: one entry per scored pair, the
    resampling unit of each side (named ``units.name``), and ``extra`` per-pair arrays as given."""
    return PairScores(scores, labels, units.a, units.b, units.name, folds, correct, dict(extra))


# -------------------------------------------------------------------------------------------- identification


def rate_replicates(successes: np.ndarray, trials: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(n_boot,)`` replicate rates ``sum(w s) / sum(w t)`` for unit multiplicities ``weights`` (n_boot x units):
    the replicate of :func:`fr_bench.metrics.uncertainty.bootstrap_rate`, exposed so several galleries can share
    one draw (NaN where a replicate has no trial)."""
    from fr_bench.metrics import rate_replicates as replicates

    return replicates(successes, trials, weights)


def tpir_replicates(search: Any, units: np.ndarray, fpirs: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """``(len(fpirs), n_boot)`` replicate TPIR@FPIR (NIST, rank 1) of one gallery's ``OpenSetSearch`` for unit
    multiplicities ``weights`` (columns: the sorted distinct ``units``), the replicates of
    :func:`fr_bench.metrics.uncertainty.bootstrap_tpir_at_fpir` with a draw shared across galleries (so the mean
    over galleries gets its own interval)."""
    from fr_bench.metrics import tpir_replicates as replicates

    return replicates(search, units, weights, fpirs=fpirs, rank=1)


def replicate_interval(point: float, replicates: np.ndarray, *, ci: float, unit: str) -> dict[str, Any]:
    """The result-file interval of ``point`` from bootstrap ``replicates`` (percentile; undefined ones dropped)."""
    from fr_bench.metrics import percentile_interval

    return interval_dict(percentile_interval(float(point), replicates, level=ci, unit=unit))
