"""The ROC/count kernel every 1:1 verification number is read from (private: the public functions live in
``verification``, ``accuracy``, ``uncertainty``).

Scores: higher = more similar. Labels: 1 genuine (same identity), 0 impostor. Inputs: 1-D numpy arrays or torch
tensors (CPU or CUDA). All rates are computed from integer counts (``count / N``); FAR targets are compared with
integer budgets ``floor(far * n_impostor)``, never with rounded float rates.

One kernel feeds everything: sort the scores once, group ties, and take the cumulative integer counts of genuine
(``tps``) and impostor (``fps``) pairs scoring ``>=`` each distinct score, in descending score order. On a CUDA
tensor the sort and the cumulative sums run on the GPU; only the count arrays come back to the host.

TAR@FAR: the same benchmark, different numbers. ``convention`` names how the ROC is read at a target FAR ``f``
(``n_imp`` impostor pairs; the ROC is the full one, every distinct score a threshold, plus the leading point
``far = tar = 0`` at threshold ``+inf``):

- ``"strict"``: the most permissive threshold whose FAR does not exceed the target: the largest ROC index ``i``
  with ``fps[i] <= floor(f * n_imp)`` (integer comparison; ``f`` is read as the decimal it prints as, so
  ``1e-3 * 300000`` is exactly 300); report ``tps[i] / n_gen``. Never optimistic; TAR is non-decreasing in ``f``.
- ``"nearest"`` (alias ``"insightface"``): the published IJB-B/C tables (insightface, FaceX-Zoo, TFace, CVLface,
  UNPG, MagFace): scikit-learn ``roc_curve`` with its defaults (``drop_intermediate=True``: collinear points
  dropped), arrays reversed, and the point whose FPR is nearest to ``f`` (the first one in the reversed order,
  ``np.argmin(abs(fpr[::-1] - f))``). The realised FAR can sit above the target (optimistic); it is reported.
- ``"interpolated"`` (OpenSphere): ``np.interp(f, fpr, tpr)`` over the full ROC (linear interpolation of TPR in FPR;
  where several points share the FPR ``f`` the one with the highest TPR is read). The realised FAR is ``f`` itself.
- ``"nearest-reference"``: ``"nearest"``, and an unresolvable target is read anyway, exactly as the reference
  procedure reads it (scikit-learn ``roc_curve`` defaults, the point whose FPR is nearest ``f``), so a published
  number that was read where the data cannot resolve it (UNPG's K-FACE tables: TAR@FAR=1e-3 on 500 impostor pairs)
  can be reproduced by naming this convention. Such a point keeps ``resolvable=False`` and carries a ``flag``
  string saying why the number is unsound; resolvable targets are identical to ``"nearest"``.

Resolvability (all conventions): a target ``f`` is resolvable iff ``floor(f * n_imp) >= 1``, i.e. at least one
impostor false accept is allowed (``n_imp >= 1/f``). An unresolvable target gives NaN (``resolvable=False``, a
``flag``) and one ``warnings.warn`` listing the unresolvable FARs, never a number, except under
``"nearest-reference"`` (above), which reads the number and still flags and warns.

"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from fr_bench.metrics._checks import check_scores_labels, is_torch, to_numpy
from fr_bench.metrics._common import ToDict, allowed_count

DEFAULT_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)

TAR_CONVENTIONS: dict[str, str] = {
    "strict": "TAR at the most permissive threshold whose FAR does not exceed the target "
    "(largest ROC index with fps <= floor(far * n_impostor)); never optimistic.",
    "nearest": "TAR at the point of scikit-learn's default ROC (drop_intermediate=True) whose FPR is nearest the "
    "target (insightface, FaceX-Zoo, TFace, CVLface, UNPG, MagFace: the published IJB-B/C tables).",
    "interpolated": "TPR linearly interpolated at the target FPR on the full ROC, np.interp(far, fpr, tpr) "
    "(OpenSphere).",
    "nearest-reference": "'nearest', and a target the data cannot resolve (floor(far * n_impostor) = 0) is read "
    "anyway at the nearest FPR, as the reference procedure does (UNPG's K-FACE tables: TAR@FAR=1e-3 on 500 "
    "impostor pairs); such points stay resolvable=False and carry a flag. Only to reproduce published numbers.",
}
TAR_ALIASES = {"insightface": "nearest"}


@dataclass(frozen=True)
class OperatingPoint(ToDict):
    """One reading of the ROC at a target FAR.

    ``far`` is the FAR actually realised (``fps / n_impostor`` at ``threshold``; for "nearest" it can exceed the
    target; for "interpolated" it equals the target). ``threshold``: accept iff ``score >= threshold`` (``+inf``:
    accept nothing); for "interpolated" it is linearly interpolated between the thresholds of the two bracketing ROC
    points (``+inf`` when the lower point is the leading ``+inf`` point). Unresolvable targets: ``tar``, ``far``,
    ``threshold`` are NaN and ``resolvable`` is False (under "nearest-reference" they hold the reference
    procedure's reading instead, still ``resolvable=False``). ``flag``: empty for a sound point, else why the
    number is NaN or unsound.
    """

    target_far: float
    tar: float
    far: float
    threshold: float
    convention: str
    n_genuine: int | float
    n_impostor: int | float
    resolvable: bool
    flag: str = ""


# ------------------------------------------------------------------------------------------------------ the kernel


def roc_counts(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate, then ``(fps, tps, thresholds)``: int64 cumulative impostor / genuine counts scoring
    ``>= thresholds[k]``, over the distinct scores in descending order (no leading ``+inf`` point)."""
    s, y = check_scores_labels(scores, labels)
    if is_torch(scores) and scores.is_cuda:
        return roc_counts_torch(scores, y)
    native = to_numpy(scores)
    if native.dtype == np.float32:  # same order and values as in float64 (exact widening), half the sort's work
        fps, tps, thr = roc_counts_numpy(native, y)
        return fps, tps, thr.astype(np.float64)
    return roc_counts_numpy(s, y)


def roc_counts_numpy(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One value sort (no argsort): distinct values from the sorted scores, genuine counts per distinct value by
    ``searchsorted`` of the genuine scores + ``bincount``; impostor counts = group sizes - genuine counts."""
    asc = np.sort(s)
    n = asc.size
    is_start = np.empty(n, dtype=bool)
    is_start[0] = True
    np.not_equal(asc[1:], asc[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    del is_start
    values = asc[starts]
    del asc
    group_sizes = np.diff(np.append(starts, n))
    del starts
    gen = np.sort(s[y])  # sorted keys make searchsorted cache-friendly when there are many genuine pairs
    gen_per_value = np.bincount(np.searchsorted(values, gen), minlength=values.size)
    tps = np.cumsum(gen_per_value[::-1])
    fps = np.cumsum(group_sizes[::-1])
    fps -= tps
    return fps, tps, values[::-1].copy()


def roc_counts_torch(scores: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same counts with torch on the tensor's device (used for CUDA tensors; works on CPU tensors too)."""
    import torch

    s = scores.detach().reshape(-1).to(torch.float64)
    lab = torch.from_numpy(np.ascontiguousarray(y)).to(s.device)
    desc, order = torch.sort(s, descending=True)
    values, counts = torch.unique_consecutive(desc, return_counts=True)
    ends = torch.cumsum(counts, 0) - 1
    tps = torch.cumsum(lab[order].to(torch.int64), 0)[ends]
    fps = ends + 1 - tps
    return fps.cpu().numpy(), tps.cpu().numpy(), values.cpu().numpy()


def with_leading_point(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray):
    """Prepend scikit-learn's leading point (fps = tps = 0 at threshold +inf)."""
    return (np.concatenate([np.zeros(1, fps.dtype), fps]), np.concatenate([np.zeros(1, tps.dtype), tps]),
            np.concatenate([[np.inf], np.asarray(thresholds, dtype=np.float64)]))


def area_under_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    """Trapezoidal area under the ROC from the counts (with leading point), as one exact integer sum."""
    n_imp, n_gen = fps[-1], tps[-1]
    if np.issubdtype(fps.dtype, np.integer) and np.issubdtype(tps.dtype, np.integer):
        # sum_i dF_i (T_i + T_i+1) by parts = sum over the few steps j where T rises (dT_j > 0) of
        # dT_j * (2 (F_N - F_j+1) + dF_j): O(genuine values) after one diff, the same exact integer
        d_t = np.diff(tps)
        j = np.flatnonzero(d_t)
        dt, f_next = d_t[j], fps[j + 1]
        twice_area = int(np.sum(dt * (2 * (n_imp - f_next) + (f_next - fps[j])), dtype=np.int64))
        return float(Fraction(twice_area, 2 * int(n_imp) * int(n_gen)))
    return float(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])) / (2.0 * n_imp * n_gen))


# -------------------------------------------------------------------------------------------------------- TAR@FAR


def canonical_tar_convention(convention: str) -> str:
    """The ``TAR_CONVENTIONS`` name of ``convention`` (aliases resolved); ``ValueError`` for an unknown one."""
    name = TAR_ALIASES.get(convention, convention)
    if name not in TAR_CONVENTIONS:
        raise ValueError(f"unknown TAR convention {convention!r}; expected one of "
                         f"{sorted(TAR_CONVENTIONS) + sorted(TAR_ALIASES)}")
    return name


def check_fars(fars: Sequence[float]) -> list[float]:
    """FAR targets as floats in (0, 1]; ``ValueError`` otherwise or when empty."""
    out = []
    for f in np.atleast_1d(np.asarray(fars, dtype=np.float64)).tolist():
        if not (0.0 < f <= 1.0):
            raise ValueError(f"FAR targets must lie in (0, 1], got {f!r}")
        out.append(float(f))
    if not out:
        raise ValueError("fars is empty: give at least one FAR target")
    return out


def false_accept_budget(far: float, n_imp: float) -> float:
    """Largest impostor count allowed at target ``far``: ``floor(far * n_imp)`` computed exactly, with ``far`` read
    as the decimal it prints as. For non-integral (weighted) ``n_imp``: ``far * n_imp`` (relative slack 1e-12)."""
    if float(n_imp).is_integer():
        return float(allowed_count(far, int(n_imp)))
    return far * float(n_imp) * (1.0 + 1e-12)


def sklearn_default_keep(fps: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Indices scikit-learn's ``roc_curve(drop_intermediate=True)`` keeps (points where the curve has a corner)."""
    if fps.shape[0] <= 2:
        return np.arange(fps.shape[0])
    corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
    return np.flatnonzero(np.concatenate([[True], corner, [True]]))


def read_operating_points(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray, n_imp: float, n_gen: float,
                           fars: Sequence[float], convention: str) -> dict[float, OperatingPoint]:
    """Read the ROC at each target FAR from cumulative counts (the one implementation of TAR@FAR).

    ``fps``, ``tps``: cumulative impostor / genuine counts (int, or float weights, e.g. bootstrap multiplicities)
    of pairs scoring ``>= thresholds[k]``, ``thresholds`` the distinct scores in strictly DESCENDING order, WITHOUT
    the leading ``+inf`` point (added here); ``n_imp == fps[-1]``, ``n_gen == tps[-1]``. ``convention``: a name of
    ``TAR_CONVENTIONS`` (or an alias). Returns ``{target far: OperatingPoint}``. Does not warn: the caller decides
    what to do with unresolvable points (``resolvable=False``, NaN values).
    """
    name = canonical_tar_convention(convention)
    fars = check_fars(fars)
    fps, tps, thr = np.asarray(fps), np.asarray(tps), np.asarray(thresholds, dtype=np.float64)
    n_gen_out = int(n_gen) if float(n_gen).is_integer() else float(n_gen)
    n_imp_out = int(n_imp) if float(n_imp).is_integer() else float(n_imp)

    def point(k: int) -> tuple[float, float, float]:  # (tar, far, threshold) at ROC index k; -1: leading point
        if k < 0:
            return 0.0, 0.0, math.inf
        return float(tps[k] / n_gen), float(fps[k] / n_imp), float(thr[k])

    if name in ("nearest", "nearest-reference"):  # sklearn's default curve: leading point + kept corners, reversed
        keep = sklearn_default_keep(fps, tps)
        fpr_rev = np.concatenate([[0.0], fps[keep] / n_imp])[::-1]
        idx_rev = np.concatenate([[-1], keep])[::-1]
    out: dict[float, OperatingPoint] = {}
    for f in fars:
        budget = false_accept_budget(f, n_imp)
        if budget < 1 - 1e-9:
            why = (f"unresolvable: floor({f:g} x {n_imp_out} impostors) = 0 false accepts allowed (needs "
                   f">= {math.ceil(1 / f)} impostors)")
            if name == "nearest-reference":
                tar, far, t = point(int(idx_rev[int(np.argmin(np.abs(fpr_rev - f)))]))
                out[f] = OperatingPoint(f, tar, far, t, name, n_gen_out, n_imp_out, False,
                                        f"{why}; read at the nearest FPR as the reference procedure does: unsound")
            else:
                out[f] = OperatingPoint(f, math.nan, math.nan, math.nan, name, n_gen_out, n_imp_out, False,
                                        f"{why}; NaN")
            continue
        if name == "strict":
            tar, far, t = point(int(np.searchsorted(fps, budget, side="right")) - 1)
        elif name in ("nearest", "nearest-reference"):
            tar, far, t = point(int(idx_rev[int(np.argmin(np.abs(fpr_rev - f)))]))
        else:  # interpolated: last point with fpr <= f (highest TPR at that FPR), then linear to the next one
            k = last_fpr_at_most(fps, n_imp, f)
            tar, far, t = point(k)
            if far != f and k + 1 < fps.size:
                tar1, far1, t1 = point(k + 1)
                tar = float(np.interp(f, [far, far1], [tar, tar1]))  # the same arithmetic as np.interp(f, fpr, tpr)
                t = math.inf if math.isinf(t) else t + (f - far) / (far1 - far) * (t1 - t)
                far = f
        out[f] = OperatingPoint(f, tar, far, t, name, n_gen_out, n_imp_out, True)
    return out


def last_fpr_at_most(fps: np.ndarray, n_imp: float, f: float) -> int:
    """Largest index k with ``fps[k] / n_imp <= f`` in floating point (-1 if none), via a count search + a
    rounding check, without forming the FPR array."""
    k = int(np.searchsorted(fps, f * n_imp * (1 + 1e-9), side="right")) - 1
    while k >= 0 and fps[k] / n_imp > f:
        k -= 1
    while k + 1 < fps.size and fps[k + 1] / n_imp <= f:
        k += 1
    return k


def warn_unresolvable(points: dict[float, OperatingPoint]) -> None:
    bad = [f for f, p in points.items() if not p.resolvable]
    if bad:
        first = next(iter(points.values()))
        how = ("read at the nearest FPR as the reference procedure does (flagged, unsound)"
               if first.convention == "nearest-reference" else "reported as NaN")
        warnings.warn(f"TAR@FAR not resolvable with {first.n_impostor} impostor pairs for FAR {bad} (needs "
                      f"floor(far * n_impostor) >= 1, i.e. n_impostor >= 1/far); {how}", stacklevel=3)


# ------------------------------------------------------------------------------------------------------------ EER


def eer_from_counts(fps: np.ndarray, tps: np.ndarray) -> float:
    """EER on the full ROC (counts with leading point): FNR = 1 - TPR and FPR; ``d = FNR - FPR`` is non-increasing
    from 1 to -1. At the first point ``j`` with ``d[j] <= 0`` (found by integer comparison): if ``d[j] == 0`` the
    EER is ``FPR[j]``, else FPR linearly interpolated between points ``j-1`` and ``j`` at the zero of ``d``
    (where the ROC segment meets the line FNR = FPR)."""
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    # d <= 0  <=>  (n_gen - tps) * n_imp <= fps * n_gen   (exact in int64 for IJB-sized sets)
    lhs = (n_gen - tps) * n_imp
    rhs = fps * n_gen
    j = int(np.argmax(lhs <= rhs))
    fpr_j = fps[j] / n_imp
    if lhs[j] == rhs[j]:
        return float(fpr_j)
    d_prev = (n_gen - tps[j - 1]) / n_gen - fps[j - 1] / n_imp
    d_j = (n_gen - tps[j]) / n_gen - fpr_j
    w = d_prev / (d_prev - d_j)
    fpr_prev = fps[j - 1] / n_imp
    return float(fpr_prev + w * (fpr_j - fpr_prev))




def strict_point_from_top(target: float, top_negatives: np.ndarray, n_negative: int, positives: np.ndarray,
                          n_positive: int) -> OperatingPoint:
    """The strict reading at ``target`` from the highest negative scores only (MegaFace impostors, open-set
    non-mated searches), as ``read_operating_points`` reads the full ROC: ``k = allowed_count(target, n_negative)``
    negatives may be accepted; ``t`` = the (k+1)-th largest negative (``-inf`` when ``k >= n_negative``); accepted:
    every score ``> t``. ``top_negatives``: float64, descending, at least ``min(k + 1, n_negative)`` of them;
    ``positives``: the positive scores that can be accepted. The reported ``threshold`` is the lowest accepted
    score (accept iff ``score >= threshold``, as everywhere; ``+inf`` when nothing is accepted). Unresolvable
    (``k < 1`` or no positive): NaN values, ``resolvable=False``, a flag; the caller warns."""
    k = allowed_count(target, n_negative)
    if n_positive == 0 or k < 1:
        why = "no positive" if n_positive == 0 else (
            f"unresolvable: floor({target:g} x {n_negative}) = 0 allowed (needs >= {math.ceil(1 / target)})")
        return OperatingPoint(target, math.nan, math.nan, math.nan, "strict", n_positive, n_negative, False,
                              f"{why}; NaN")
    if k < n_negative and top_negatives.size <= k:
        raise ValueError(f"need the {k + 1} highest negative scores, got {top_negatives.size}")
    t = top_negatives[k] if k < n_negative else -math.inf
    neg_acc = top_negatives[:k + 1][top_negatives[:k + 1] > t]
    pos_acc = positives[positives > t]
    lowest = min(neg_acc.min(initial=math.inf), pos_acc.min(initial=math.inf))
    return OperatingPoint(target, pos_acc.size / n_positive, neg_acc.size / n_negative, float(lowest), "strict",
                          n_positive, n_negative, True)
