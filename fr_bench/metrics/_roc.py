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
from fr_bench.metrics._common import ToDict, allowed_count, resolve_convention

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
    # float32 scores stay float32: same order and values as in float64 (exact widening), half the sort's work
    s, y = check_scores_labels(scores, labels, keep_float32=True)
    if is_torch(scores) and scores.is_cuda:
        return roc_counts_torch(scores, y)
    return roc_counts_numpy(s, y)


def roc_counts_numpy(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One value sort (no argsort): distinct values from the sorted scores; pairs scoring ``>=`` the distinct value
    starting at sorted position ``i`` number ``n - i``; genuine counts per distinct value by ``searchsorted`` of the
    genuine scores + ``bincount``; impostor counts = pairs - genuine counts. Thresholds come back as float64."""
    asc = np.sort(s)
    n = asc.size
    is_start = np.empty(n, dtype=bool)
    is_start[0] = True
    np.not_equal(asc[1:], asc[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    del is_start
    values = asc[starts]
    del asc
    gen = np.sort(s[y])  # sorted keys make searchsorted cache-friendly when there are many genuine pairs
    gen_per_value = np.bincount(np.searchsorted(values, gen), minlength=values.size)
    tps = np.cumsum(gen_per_value[::-1])
    del gen_per_value
    fps = np.subtract(n, starts[::-1])  # all pairs scoring >= each value (descending)
    fps -= tps
    return fps, tps, values[::-1].astype(np.float64)


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


def rates_with_leading_point(counts: np.ndarray, total: int) -> np.ndarray:
    """``[0, counts / total]`` as float64 in one pass: the FAR or TAR column of the full ROC, with scikit-learn's
    leading point (no pair accepted at threshold ``+inf``)."""
    out = np.empty(counts.size + 1)
    out[0] = 0.0
    np.divide(counts, total, out=out[1:])
    return out


def thresholds_with_leading_point(thresholds: np.ndarray) -> np.ndarray:
    """``[+inf, thresholds]`` as float64 (the threshold column of the full ROC)."""
    out = np.empty(thresholds.size + 1)
    out[0] = np.inf
    out[1:] = thresholds
    return out


def genuine_steps(tps: np.ndarray) -> np.ndarray:
    """Indices ``k`` where ``tps`` rises (``tps[k] > tps[k-1]``, ``tps[-1] := 0``), found with one ``searchsorted``
    per genuine count instead of a pass over the ROC: O(n_genuine log n_points)."""
    n_gen = int(tps[-1])
    return np.unique(np.searchsorted(tps, np.arange(1, n_gen + 1), side="left"))


def area_under_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    """Trapezoidal area under the ROC (integer counts WITHOUT the leading point, which is implied), one exact
    integer sum: ``sum_i dF_i (T_i + T_i+1)`` by parts = over the steps ``k`` where T rises by ``dT_k``,
    ``dT_k * (2 (N - F_k) + (F_k - F_k-1))`` (``F_-1 = 0``), divided by ``2 N G``. Equals scikit-learn's
    ``roc_auc_score``."""
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    k = genuine_steps(tps)
    t_prev = np.where(k > 0, tps[k - 1], 0)
    f_prev = np.where(k > 0, fps[k - 1], 0)
    f_k = fps[k]
    twice_area = int(np.sum((tps[k] - t_prev) * (2 * (n_imp - f_k) + (f_k - f_prev)), dtype=np.int64))
    return float(Fraction(twice_area, 2 * n_imp * n_gen))


# -------------------------------------------------------------------------------------------------------- TAR@FAR


def canonical_tar_convention(convention: str) -> str:
    """The ``TAR_CONVENTIONS`` name of ``convention`` (aliases resolved); ``ValueError`` for an unknown one."""
    return resolve_convention(convention, TAR_CONVENTIONS, TAR_ALIASES, "TAR")


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

    out: dict[float, OperatingPoint] = {}
    for f in fars:
        budget = false_accept_budget(f, n_imp)
        if budget < 1 - 1e-9:
            why = (f"unresolvable: floor({f:g} x {n_imp_out} impostors) = 0 false accepts allowed (needs "
                   f">= {math.ceil(1 / f)} impostors)")
            if name == "nearest-reference":
                tar, far, t = point(nearest_index(fps, tps, n_imp, f))
                out[f] = OperatingPoint(f, tar, far, t, name, n_gen_out, n_imp_out, False,
                                        f"{why}; read at the nearest FPR as the reference procedure does: unsound")
            else:
                out[f] = OperatingPoint(f, math.nan, math.nan, math.nan, name, n_gen_out, n_imp_out, False,
                                        f"{why}; NaN")
            continue
        if name == "strict":
            tar, far, t = point(int(np.searchsorted(fps, _count_key(fps, budget), side="right")) - 1)
        elif name in ("nearest", "nearest-reference"):
            tar, far, t = point(nearest_index(fps, tps, n_imp, f))
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


def _kept(fps: np.ndarray, tps: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Whether each point ``lo..hi-1`` is on scikit-learn's default ROC (``drop_intermediate=True`` keeps the first
    and last points and every point where the second difference of ``fps`` or ``tps`` is non-zero)."""
    m = fps.size
    idx = np.arange(lo, hi)
    inner = (idx > 0) & (idx < m - 1)
    prev, nxt = np.clip(idx - 1, 0, m - 1), np.clip(idx + 1, 0, m - 1)
    corner = ((fps[nxt] - fps[idx]) != (fps[idx] - fps[prev])) | ((tps[nxt] - tps[idx]) != (tps[idx] - tps[prev]))
    return ~inner | corner if m > 2 else np.ones(idx.size, bool)


def _last_kept_before(fps: np.ndarray, tps: np.ndarray, q: int) -> int:
    """The largest kept index ``< q`` (-1: none, i.e. the leading point), scanning back in growing windows."""
    hi, width = q, 256
    while hi > 0:
        lo = max(0, hi - width)
        kept = np.flatnonzero(_kept(fps, tps, lo, hi))
        if kept.size:
            return lo + int(kept[-1])
        hi, width = lo, width * 4
    return -1


def _first_kept_from(fps: np.ndarray, tps: np.ndarray, q: int) -> int:
    """The smallest kept index ``>= q`` (``fps.size``: none), scanning forward in growing windows."""
    lo, width = q, 256
    while lo < fps.size:
        hi = min(fps.size, lo + width)
        kept = np.flatnonzero(_kept(fps, tps, lo, hi))
        if kept.size:
            return lo + int(kept[0])
        lo, width = hi, width * 4
    return fps.size


def nearest_index(fps: np.ndarray, tps: np.ndarray, n_imp: float, f: float) -> int:
    """The ROC index (-1: the leading point) that scikit-learn's default curve, reversed, gives for
    ``np.argmin(abs(fpr - f))``: the kept point with the FPR nearest ``f``, the one with the largest index on ties.

    Read locally, without forming the kept curve: FPR is non-decreasing, so the nearest kept point is the last kept
    point with FPR ``<= f`` or the last kept point sharing the FPR of the first kept point above ``f`` (the last
    point of a run of equal FPR is always kept); float distances ``abs(fps / n_imp - f)`` as numpy computes them.
    """
    q = last_fpr_at_most(fps, n_imp, f) + 1  # first index with fpr > f
    lo = _last_kept_before(fps, tps, q)
    r = _first_kept_from(fps, tps, q)
    if r >= fps.size:
        return lo
    r = int(np.searchsorted(fps, fps[r], side="right")) - 1  # the last point of r's FPR run (kept)
    d_lo = abs((fps[lo] / n_imp if lo >= 0 else 0.0) - f)
    d_hi = abs(fps[r] / n_imp - f)
    return r if d_hi <= d_lo else lo


def _count_key(counts: np.ndarray, x: float) -> Any:
    """A search key for ``searchsorted(counts, x, side="right")``: ``floor(x)`` as an int for integer counts (the
    same answer; a float key would make numpy convert the whole count array to float64 first)."""
    return math.floor(x) if np.issubdtype(counts.dtype, np.integer) else x


def last_fpr_at_most(fps: np.ndarray, n_imp: float, f: float) -> int:
    """Largest index k with ``fps[k] / n_imp <= f`` in floating point (-1 if none), via a count search + a
    rounding check, without forming the FPR array."""
    k = int(np.searchsorted(fps, _count_key(fps, f * n_imp * (1 + 1e-9)), side="right")) - 1
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
    """EER on the full ROC (integer counts WITHOUT the leading point ``(0, 0)``, which is implied): FNR = 1 - TPR
    and FPR; ``d = FNR - FPR`` is non-increasing from 1 to -1. At the first point ``j`` with ``d[j] <= 0``
    (``(n_gen - tps) * n_imp <= fps * n_gen`` in exact integers, found by bisection): if ``d[j] == 0`` the EER is
    ``FPR[j]``, else FPR linearly interpolated between point ``j-1`` (or the leading point) and ``j`` at the zero
    of ``d`` (where the ROC segment meets the line FNR = FPR)."""
    n_imp, n_gen = int(fps[-1]), int(tps[-1])

    def below(j: int) -> bool:  # d[j] <= 0
        return (n_gen - int(tps[j])) * n_imp <= int(fps[j]) * n_gen

    lo, hi = 0, fps.size - 1  # the last point has d = -1 <= 0
    while lo < hi:
        mid = (lo + hi) // 2
        if below(mid):
            hi = mid
        else:
            lo = mid + 1
    j = lo
    fpr_j = fps[j] / n_imp
    if (n_gen - int(tps[j])) * n_imp == int(fps[j]) * n_gen:
        return float(fpr_j)
    f_prev, t_prev = (int(fps[j - 1]), int(tps[j - 1])) if j > 0 else (0, 0)
    d_prev = (n_gen - t_prev) / n_gen - f_prev / n_imp
    d_j = (n_gen - tps[j]) / n_gen - fpr_j
    w = d_prev / (d_prev - d_j)
    fpr_prev = f_prev / n_imp
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
