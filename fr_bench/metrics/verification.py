"""1:1 verification metrics: ROC, TAR@FAR, EER, AUC, k-fold pair accuracy.

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

Pair accuracy conventions: see ``PAIR_ACCURACY_CONVENTIONS`` and ``pair_accuracy``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from fr_bench.metrics._checks import check_scores_labels, is_torch, to_numpy

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
_TAR_ALIASES = {"insightface": "nearest"}

PAIR_ACCURACY_CONVENTIONS: dict[str, str] = {
    "kfold-grid": "10 contiguous folds; threshold maximising accuracy on the other folds over squared-L2 distance "
    "2 - 2*cos on the grid 0.00..3.99 step 0.01, same iff dist < t, first best; mean and population std "
    "(insightface, face.evoLVe, CVLface, TFace).",
    "kfold-exact": "10 contiguous folds; threshold maximising accuracy on the other folds over every midpoint of "
    "distinct training scores (true optimum, smallest on ties), same iff score > t; mean and population std.",
    "kfold-youden": "10 contiguous folds; threshold maximising TPR - FPR on the other folds over 1,000 thresholds "
    "min + k*(max-min)/1000, k=1..1000; mean and standard error std(ddof=1)/sqrt(10) (FaceX-Zoo).",
    "best-threshold": "no folds: the oracle threshold maximising accuracy on the whole set; OPTIMISTIC "
    "(OpenSphere, UNPG best_th, deepface's benchmark).",
    "kfold-angular": "10 contiguous folds on the angular distance arccos(cos)/pi of mean-subtracted embeddings "
    "(scores from angular_scores), grid 0.00..3.99 step 0.01, same iff dist < t, first best; mean and population "
    "std (MagFace).",
}
_ACCURACY_ALIASES = {"insightface": "kfold-grid", "grid": "kfold-grid", "exact": "kfold-exact",
                     "youden": "kfold-youden", "facex-zoo": "kfold-youden", "magface": "kfold-angular",
                     "oracle": "best-threshold"}

# insightface verification.py / MagFace eval_1v1.py threshold grid.
_GRID = np.arange(0, 4, 0.01)
_YOUDEN_STEPS = 1000


# --------------------------------------------------------------------------------------------------- result types


def _json_value(v: Any) -> Any:
    """JSON-ready value: NaN and +-inf -> None, numpy scalars/arrays -> Python floats/ints/lists."""
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, dict):
        return {(format(k, "g") if isinstance(k, float) else str(k)): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return v


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf -> None, float dict keys -> strings like '1e-06')."""
        return {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class OperatingPoint(_ToDict):
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


@dataclass(frozen=True)
class KFoldResult(_ToDict):
    """Pair accuracy (fractions in [0, 1], not percent).

    ``mean``: mean held-out fold accuracy. ``std``: population std (ddof=0) over folds. ``sem``: standard error
    ``std(ddof=1) / sqrt(n_folds)`` (NaN for one fold). ``reported_spread`` names the spread the convention
    publishes ("std" or "sem"). ``fold_accuracies``: held-out accuracy per fold. ``fold_thresholds``: the threshold
    applied to each fold, in score units (same iff ``score > threshold`` for "kfold-exact"/"best-threshold"; for
    the grid conventions the score-unit image of the grid point, see ``pair_accuracy``). ``train_accuracies``:
    accuracy of that threshold on the training folds (the folds it was chosen on). ``optimistic``: True when the
    threshold was chosen on the data it is scored on ("best-threshold").
    """

    mean: float
    std: float
    sem: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    train_accuracies: np.ndarray
    convention: str
    n_folds: int
    reported_spread: str
    optimistic: bool = False


@dataclass(frozen=True)
class VerificationReport(_ToDict):
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


# ------------------------------------------------------------------------------------------------------ the kernel


def _roc_counts(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate, then ``(fps, tps, thresholds)``: int64 cumulative impostor / genuine counts scoring
    ``>= thresholds[k]``, over the distinct scores in descending order (no leading ``+inf`` point)."""
    s, y = check_scores_labels(scores, labels)
    if is_torch(scores) and scores.is_cuda:
        return _roc_counts_torch(scores, y)
    native = to_numpy(scores)
    if native.dtype == np.float32:  # same order and values as in float64 (exact widening), half the sort's work
        fps, tps, thr = _roc_counts_numpy(native, y)
        return fps, tps, thr.astype(np.float64)
    return _roc_counts_numpy(s, y)


def _roc_counts_numpy(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _roc_counts_torch(scores: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _with_leading_point(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray):
    """Prepend scikit-learn's leading point (fps = tps = 0 at threshold +inf)."""
    return (np.concatenate([np.zeros(1, fps.dtype), fps]), np.concatenate([np.zeros(1, tps.dtype), tps]),
            np.concatenate([[np.inf], np.asarray(thresholds, dtype=np.float64)]))


# ------------------------------------------------------------------------------------------------------------ ROC


def roc(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC ``(far, tar, thresholds)`` over every distinct score (ties grouped), descending thresholds.

    Point ``k``: accept iff ``score >= thresholds[k]``; ``far[k] = fps[k] / n_impostor``, ``tar[k] = tps[k] /
    n_genuine``. Starts with the point ``(0, 0)`` at threshold ``+inf``. Identical to scikit-learn
    ``roc_curve(labels, scores, drop_intermediate=False)``.
    """
    fps, tps, thr = _with_leading_point(*_roc_counts(scores, labels))
    return fps / fps[-1], tps / tps[-1], thr


def _area_under_curve(fps: np.ndarray, tps: np.ndarray) -> float:
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


def _canonical_tar_convention(convention: str) -> str:
    name = _TAR_ALIASES.get(convention, convention)
    if name not in TAR_CONVENTIONS:
        raise ValueError(f"unknown TAR convention {convention!r}; expected one of "
                         f"{sorted(TAR_CONVENTIONS) + sorted(_TAR_ALIASES)}")
    return name


def _check_fars(fars: Sequence[float]) -> list[float]:
    out = []
    for f in np.atleast_1d(np.asarray(fars, dtype=np.float64)).tolist():
        if not (0.0 < f <= 1.0):
            raise ValueError(f"FAR targets must lie in (0, 1], got {f!r}")
        out.append(float(f))
    if not out:
        raise ValueError("fars is empty: give at least one FAR target")
    return out


def _false_accept_budget(far: float, n_imp: float) -> float:
    """Largest impostor count allowed at target ``far``: ``floor(far * n_imp)`` computed exactly, with ``far`` read
    as the decimal it prints as. For non-integral (weighted) ``n_imp``: ``far * n_imp`` (relative slack 1e-12)."""
    if float(n_imp).is_integer():
        return float(math.floor(Fraction(repr(float(far))) * int(n_imp)))
    return far * float(n_imp) * (1.0 + 1e-12)


def _sklearn_default_keep(fps: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Indices scikit-learn's ``roc_curve(drop_intermediate=True)`` keeps (points where the curve has a corner)."""
    if fps.shape[0] <= 2:
        return np.arange(fps.shape[0])
    corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
    return np.flatnonzero(np.concatenate([[True], corner, [True]]))


def _read_operating_points(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray, n_imp: float, n_gen: float,
                           fars: Sequence[float], convention: str) -> dict[float, OperatingPoint]:
    """Read the ROC at each target FAR from cumulative counts (the one implementation of TAR@FAR).

    ``fps``, ``tps``: cumulative impostor / genuine counts (int, or float weights, e.g. bootstrap multiplicities)
    of pairs scoring ``>= thresholds[k]``, ``thresholds`` the distinct scores in strictly DESCENDING order, WITHOUT
    the leading ``+inf`` point (added here); ``n_imp == fps[-1]``, ``n_gen == tps[-1]``. ``convention``: a name of
    ``TAR_CONVENTIONS`` (or an alias). Returns ``{target far: OperatingPoint}``. Does not warn: the caller decides
    what to do with unresolvable points (``resolvable=False``, NaN values).
    """
    name = _canonical_tar_convention(convention)
    fars = _check_fars(fars)
    fps, tps, thr = np.asarray(fps), np.asarray(tps), np.asarray(thresholds, dtype=np.float64)
    n_gen_out = int(n_gen) if float(n_gen).is_integer() else float(n_gen)
    n_imp_out = int(n_imp) if float(n_imp).is_integer() else float(n_imp)

    def point(k: int) -> tuple[float, float, float]:  # (tar, far, threshold) at ROC index k; -1: leading point
        if k < 0:
            return 0.0, 0.0, math.inf
        return float(tps[k] / n_gen), float(fps[k] / n_imp), float(thr[k])

    if name in ("nearest", "nearest-reference"):  # sklearn's default curve: leading point + kept corners, reversed
        keep = _sklearn_default_keep(fps, tps)
        fpr_rev = np.concatenate([[0.0], fps[keep] / n_imp])[::-1]
        idx_rev = np.concatenate([[-1], keep])[::-1]
    out: dict[float, OperatingPoint] = {}
    for f in fars:
        budget = _false_accept_budget(f, n_imp)
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
            k = _last_fpr_at_most(fps, n_imp, f)
            tar, far, t = point(k)
            if far != f and k + 1 < fps.size:
                tar1, far1, t1 = point(k + 1)
                tar = float(np.interp(f, [far, far1], [tar, tar1]))  # the same arithmetic as np.interp(f, fpr, tpr)
                t = math.inf if math.isinf(t) else t + (f - far) / (far1 - far) * (t1 - t)
                far = f
        out[f] = OperatingPoint(f, tar, far, t, name, n_gen_out, n_imp_out, True)
    return out


def _last_fpr_at_most(fps: np.ndarray, n_imp: float, f: float) -> int:
    """Largest index k with ``fps[k] / n_imp <= f`` in floating point (-1 if none), via a count search + a
    rounding check, without forming the FPR array."""
    k = int(np.searchsorted(fps, f * n_imp * (1 + 1e-9), side="right")) - 1
    while k >= 0 and fps[k] / n_imp > f:
        k -= 1
    while k + 1 < fps.size and fps[k + 1] / n_imp <= f:
        k += 1
    return k


def _warn_unresolvable(points: dict[float, OperatingPoint]) -> None:
    bad = [f for f, p in points.items() if not p.resolvable]
    if bad:
        first = next(iter(points.values()))
        how = ("read at the nearest FPR as the reference procedure does (flagged, unsound)"
               if first.convention == "nearest-reference" else "reported as NaN")
        warnings.warn(f"TAR@FAR not resolvable with {first.n_impostor} impostor pairs for FAR {bad} (needs "
                      f"floor(far * n_impostor) >= 1, i.e. n_impostor >= 1/far); {how}", stacklevel=3)


def operating_points(scores: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS,
                     convention: str = "strict") -> dict[float, OperatingPoint]:
    """ROC operating point at each target FAR under ``convention`` ("strict", "nearest"/"insightface",
    "interpolated"; definitions in the module docstring and ``TAR_CONVENTIONS``).

    Returns ``{target far: OperatingPoint}`` with the TAR, the FAR actually realised and the threshold used.
    Targets with ``floor(far * n_impostor) == 0`` are unresolvable: NaN and one warning listing them.
    """
    fps, tps, thr = _roc_counts(scores, labels)
    points = _read_operating_points(fps, tps, thr, int(fps[-1]), int(tps[-1]), fars, convention)
    _warn_unresolvable(points)
    return points


def tar_at_far(scores: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS,
               convention: str = "strict") -> dict[float, float]:
    """``{target far: TAR}``: the ``tar`` of ``operating_points`` (same conventions, same NaN + warning)."""
    return {f: p.tar for f, p in operating_points(scores, labels, fars, convention).items()}


# ------------------------------------------------------------------------------------------------------------ EER


def _eer_from_counts(fps: np.ndarray, tps: np.ndarray) -> float:
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


def eer(scores: Any, labels: Any) -> float:
    """Equal error rate: the rate where FNR (= 1 - TAR) equals FAR on the full ROC, linear interpolation between
    the two ROC points where ``FNR - FAR`` changes sign (exact value if a point has FNR == FAR)."""
    fps, tps, _ = _with_leading_point(*_roc_counts(scores, labels))
    return _eer_from_counts(fps, tps)


# ---------------------------------------------------------------------------------------------------- k-fold folds


def _fold_bounds(n: int, n_folds: int) -> np.ndarray:
    """Contiguous folds in the given order, sizes as ``numpy.array_split`` / scikit-learn ``KFold(shuffle=False)``
    (the first ``n % n_folds`` folds hold one extra pair; the official sets are divisible)."""
    if not isinstance(n_folds, (int, np.integer)) or isinstance(n_folds, bool) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if n < n_folds:
        raise ValueError(f"cannot split {n} pairs into {n_folds} folds")
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _summarise(acc: np.ndarray, thr: np.ndarray, train: np.ndarray, convention: str, spread: str,
               optimistic: bool = False) -> KFoldResult:
    k = acc.size
    sem = float(np.std(acc, ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    return KFoldResult(float(np.mean(acc)), float(np.std(acc)), sem, acc, thr, train, convention, k, spread,
                       optimistic)


def _kfold_exact(s: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fold: the threshold maximising training accuracy over every distinct training-score gap (true optimum;
    smallest on ties), applied to the held-out fold. One global value sort; per fold, the held-out pairs' sparse
    contributions are taken out of the global per-value counts, then one cumulative sum and one argmax."""
    asc = np.sort(s)
    starts = np.flatnonzero(np.concatenate([[True], asc[1:] != asc[:-1]]))
    values = asc[starts]
    del asc
    m = values.size
    count_all = np.diff(np.append(starts, s.size))  # pairs per distinct value
    del starts
    gen_all = np.bincount(np.searchsorted(values, np.sort(s[y])), minlength=m)
    # per distinct value: impostors - genuines (a cut above the value gains its impostors, loses its genuines)
    delta_all = count_all - 2 * gen_all
    del gen_all
    k = bounds.size - 1
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    correct = np.empty(m + 1, dtype=np.int64)
    for f in range(k):
        fs, fy = s[bounds[f]:bounds[f + 1]], y[bounds[f]:bounds[f + 1]]
        fg, fi = np.searchsorted(values, np.sort(fs[fy])), np.searchsorted(values, np.sort(fs[~fy]))
        delta = delta_all.copy()
        np.add.at(delta, fg, 1)
        np.add.at(delta, fi, -1)
        correct[0] = 0
        np.cumsum(delta, out=correct[1:])
        c = int(np.argmax(correct))  # cut after the first c distinct values; the smallest on ties
        n_gen_tr = int(np.count_nonzero(y)) - fg.size
        train[f] = (n_gen_tr + int(correct[c])) / (s.size - fs.size)
        thr[f] = _cut_threshold_sparse(values, count_all, fg, fi, c)
        acc[f] = (np.count_nonzero(fs[fy] > thr[f]) + np.count_nonzero(fs[~fy] <= thr[f])) / fs.size
    return acc, thr, train


def _cut_threshold_sparse(values: np.ndarray, count_all: np.ndarray, fold_gen: np.ndarray, fold_imp: np.ndarray,
                          c: int) -> float:
    """``_cut_threshold`` where a value is present in the training folds iff it holds more pairs overall than in
    the held-out fold (``fold_gen``/``fold_imp``: sorted value indices of the held-out pairs); the next present
    value is searched in chunks, without a dense per-fold array."""
    if c == 0:
        return -math.inf
    start, chunk = c, 64
    while start < values.size:
        js = np.arange(start, min(start + chunk, values.size))
        held_out = (np.searchsorted(fold_gen, js, "right") - np.searchsorted(fold_gen, js, "left")
                    + np.searchsorted(fold_imp, js, "right") - np.searchsorted(fold_imp, js, "left"))
        present = np.flatnonzero(count_all[js] > held_out)
        if present.size:
            lo, hi = values[c - 1], values[js[present[0]]]
            mid = lo + (hi - lo) / 2.0
            return float(mid if lo <= mid < hi else lo)
        start, chunk = start + chunk, chunk * 2
    return math.inf


def _best_cut(values: np.ndarray, gen: np.ndarray, imp: np.ndarray) -> tuple[int, float]:
    """``(most correct, threshold)`` over the cuts between distinct ``values`` (ascending; ``gen``/``imp`` the
    genuine/impostor counts per value) for the rule same iff ``score > threshold``; the smallest cut on ties.
    Cut ``c`` lies after the first ``c`` values: correct = genuine above + impostors at or below."""
    correct = np.empty(values.size + 1, dtype=np.int64)
    correct[0] = 0
    np.cumsum(imp - gen, out=correct[1:])
    correct += int(gen.sum())
    c = int(np.argmax(correct))
    return int(correct[c]), _cut_threshold(values, gen + imp, c)


def _cut_threshold(values: np.ndarray, present: np.ndarray, c: int) -> float:
    """Threshold for the cut after distinct value ``c - 1`` (``c = 0``: below all -> -inf): the midpoint between
    that value and the next value present in the training set (+inf if none), kept strictly below the next value."""
    if c == 0:
        return -math.inf
    lo = values[c - 1]
    later = np.flatnonzero(present[c:])
    if later.size == 0:
        return math.inf
    hi = values[c + later[0]]
    mid = lo + (hi - lo) / 2.0
    return float(mid if lo <= mid < hi else lo)


def _kfold_grid(dist: np.ndarray, y: np.ndarray, bounds: np.ndarray, grid: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """insightface / MagFace: per fold, the first grid threshold ``t`` maximising training accuracy of the rule
    "same iff dist < t", applied to the held-out fold. Pair ``i`` is "same" for grid index ``j`` iff
    ``j >= searchsorted(grid, dist[i], 'right')`` (exactly ``dist < grid[j]``), so counts are bincounts."""
    first_same = np.searchsorted(grid, dist, side="right")
    nb = grid.size + 1

    def same_counts(idx: np.ndarray) -> np.ndarray:  # number of pairs "same" at each grid index
        return np.cumsum(np.bincount(idx, minlength=nb))[:-1]

    gen_all, imp_all = same_counts(first_same[y]), same_counts(first_same[~y])
    n_imp_all = int(np.count_nonzero(~y))
    k = bounds.size - 1
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    for f in range(k):
        fi, fy = first_same[bounds[f]:bounds[f + 1]], y[bounds[f]:bounds[f + 1]]
        gen_f, imp_f = same_counts(fi[fy]), same_counts(fi[~fy])
        n_imp_f = int(np.count_nonzero(~fy))
        correct_tr = (gen_all - gen_f) + ((n_imp_all - n_imp_f) - (imp_all - imp_f))
        j = int(np.argmax(correct_tr))
        thr[f] = grid[j]
        train[f] = correct_tr[j] / (y.size - fy.size)
        acc[f] = (gen_f[j] + n_imp_f - imp_f[j]) / fy.size
    return acc, thr, train


def _kfold_youden(s: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FaceX-Zoo: per fold, training thresholds ``min + step * k`` (``step = (max - min) / 1000``, ``k = 1..1000``,
    min/max over the training scores), the first maximising ``TPR - FPR`` (rates of ``score > t``); held-out
    accuracy ``(#genuine > t + #impostor < t) / fold size`` (a score equal to ``t`` counts as an error)."""
    gen_sorted, imp_sorted = np.sort(s[y]), np.sort(s[~y])
    k = bounds.size - 1
    fold_min = np.array([s[bounds[f]:bounds[f + 1]].min() for f in range(k)])
    fold_max = np.array([s[bounds[f]:bounds[f + 1]].max() for f in range(k)])
    steps = np.arange(1, _YOUDEN_STEPS + 1)
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    for f in range(k):
        others = np.arange(k) != f
        lo, hi = fold_min[others].min(), fold_max[others].max()
        ts = lo + (hi - lo) / _YOUDEN_STEPS * steps
        fs, fy = s[bounds[f]:bounds[f + 1]], y[bounds[f]:bounds[f + 1]]
        fg, fi = np.sort(fs[fy]), np.sort(fs[~fy])
        n_gen_tr, n_imp_tr = gen_sorted.size - fg.size, imp_sorted.size - fi.size
        if n_gen_tr == 0 or n_imp_tr == 0:
            raise ValueError(f"fold {f}: the training folds have no {'genuine' if n_gen_tr == 0 else 'impostor'} "
                             "pairs, so TPR - FPR is undefined")

        def above(sorted_all: np.ndarray, sorted_fold: np.ndarray, t: Any) -> Any:  # training count > t
            return ((sorted_all.size - np.searchsorted(sorted_all, t, "right"))
                    - (sorted_fold.size - np.searchsorted(sorted_fold, t, "right")))

        tp_tr, fp_tr = above(gen_sorted, fg, ts), above(imp_sorted, fi, ts)
        j = int(np.argmax(tp_tr / n_gen_tr - fp_tr / n_imp_tr))
        t = ts[j]
        thr[f] = t
        tn_tr = (n_imp_tr - fp_tr[j]) - ((np.searchsorted(imp_sorted, t, "right") - np.searchsorted(imp_sorted, t))
                                         - (np.searchsorted(fi, t, "right") - np.searchsorted(fi, t)))
        train[f] = (tp_tr[j] + tn_tr) / (n_gen_tr + n_imp_tr)
        acc[f] = (np.count_nonzero(fg > t) + np.count_nonzero(fi < t)) / fs.size
    return acc, thr, train


# ---------------------------------------------------------------------------------------------- accuracy, public


def kfold_accuracy(scores: Any, labels: Any, n_folds: int = 10, thresholds: str = "exact") -> KFoldResult:
    """k-fold pair accuracy: folds are contiguous blocks in the given order (official LFW/CFP/AgeDB/CALFW layout;
    sizes as ``numpy.array_split``, i.e. scikit-learn ``KFold(shuffle=False)``). Each fold is scored with the
    threshold chosen on the other folds. Accuracy = correct / pairs, as a fraction.

    ``thresholds``:
    - "exact": same iff ``score > t``; ``t`` maximises training accuracy over every gap between distinct training
      scores (midpoints, plus -inf below the minimum and +inf above the maximum): the true optimum, the smallest
      such threshold on ties. The midpoint of training scores ``lo < hi`` is ``lo + (hi - lo) / 2`` in float64
      (``lo`` if that rounds up to ``hi``); a held-out score lying exactly on it is judged by that float value.
      Spread reported: population ``std``.
    - "insightface" / "grid": insightface ``verification.py``: squared L2 distance of unit embeddings, computed
      here from cosine scores as ``dist = 2 - 2 * score``; grid ``np.arange(0, 4, 0.01)``; same iff
      ``dist < t`` (i.e. ``score > 1 - t / 2``); the first best grid point. ``fold_thresholds`` are reported in
      score units ``1 - t / 2``. Caveat: insightface computes ``dist`` from the embeddings, so a pair lying exactly
      on a grid boundary can fall on the other side by rounding. Scores must be cosine similarities. ``std``.
    - "youden": FaceX-Zoo (see ``_kfold_youden``): ``t`` maximises TPR - FPR over 1,000 thresholds spanning the
      training score range; spread reported: ``sem`` = std(ddof=1) / sqrt(n_folds).
    """
    name = {"exact": "kfold-exact", "insightface": "kfold-grid", "grid": "kfold-grid",
            "youden": "kfold-youden"}.get(thresholds)
    if name is None:
        raise ValueError(f"unknown thresholds {thresholds!r}; expected 'exact', 'insightface' (or 'grid'), 'youden'")
    return pair_accuracy(scores, labels, convention=name, n_folds=n_folds)


def pair_accuracy(scores: Any, labels: Any, convention: str = "kfold-grid", n_folds: int = 10) -> KFoldResult:
    """Pair accuracy under a named convention (``PAIR_ACCURACY_CONVENTIONS``):

    - "kfold-grid" (alias "insightface", "grid"), "kfold-exact" ("exact"), "kfold-youden" ("youden",
      "facex-zoo"): see ``kfold_accuracy``.
    - "best-threshold" ("oracle"): no folds; the exact search on the whole set, scored on the same set
      (``n_folds`` ignored; one "fold"; ``optimistic=True``; std 0, sem NaN).
    - "kfold-angular" ("magface"): scores must come from ``angular_scores`` (``-arccos(cos)/pi`` after
      subtracting the pair set's mean embedding); MagFace's search: ``dist = -score``, grid
      ``np.arange(0, 4, 0.01)``, same iff ``dist < t``, first best; ``fold_thresholds`` in score units ``-t``.
      MagFace subtracts the mean of the TRAINING folds' embeddings per fold; ``angular_scores`` subtracts the whole
      pair set's mean (use ``angular_kfold_accuracy`` for MagFace's per-fold mean).
    """
    name = _ACCURACY_ALIASES.get(convention, convention)
    if name not in PAIR_ACCURACY_CONVENTIONS:
        raise ValueError(f"unknown accuracy convention {convention!r}; expected one of "
                         f"{sorted(PAIR_ACCURACY_CONVENTIONS) + sorted(_ACCURACY_ALIASES)}")
    s, y = check_scores_labels(scores, labels)
    if name == "best-threshold":
        return _oracle(s, y)
    bounds = _fold_bounds(s.size, n_folds)
    if name == "kfold-exact":
        acc, thr, train = _kfold_exact(s, y, bounds)
        return _summarise(acc, thr, train, name, "std")
    if name == "kfold-youden":
        acc, thr, train = _kfold_youden(s, y, bounds)
        return _summarise(acc, thr, train, name, "sem")
    if name == "kfold-grid":
        acc, t, train = _kfold_grid(2.0 - 2.0 * s, y, bounds, _GRID)
        return _summarise(acc, 1.0 - t / 2.0, train, name, "std")
    acc, t, train = _kfold_grid(-s, y, bounds, _GRID)  # kfold-angular
    return _summarise(acc, -t, train, name, "std")


def _oracle(s: np.ndarray, y: np.ndarray) -> KFoldResult:
    """Best accuracy over all thresholds on the whole set (same iff score > t), smallest best threshold."""
    asc = np.sort(s)
    values = asc[np.concatenate([[True], asc[1:] != asc[:-1]])]
    gen = np.bincount(np.searchsorted(values, s[y]), minlength=values.size)
    imp = np.bincount(np.searchsorted(values, s[~y]), minlength=values.size)
    n_correct, t = _best_cut(values, gen, imp)
    a = np.array([n_correct / s.size])
    return _summarise(a, np.array([t]), a.copy(), "best-threshold", "std", optimistic=True)


def angular_scores(emb_a: Any, emb_b: Any, subtract_mean: bool = True) -> np.ndarray:
    """MagFace-style similarity ``-arccos(cos) / pi`` (in [-1, 0], higher = more similar) of pairs
    ``(emb_a[i], emb_b[i])``, where ``cos`` is the cosine of the two embeddings after subtracting the mean of all
    ``2 * n`` embeddings of the pair set (if ``subtract_mean``), clipped to [-1, 1]. Computed in float64."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    _check_embedding_pairs(a, b)
    if subtract_mean:
        mean = np.concatenate([a, b]).mean(axis=0)
        a, b = a - mean, b - mean
    return -_angular_distance(a, b)


def _check_embedding_pairs(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must be 2-D arrays of the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("no embedding pairs: emb_a is empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("embeddings contain NaN or inf values")


def _angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if np.any(norms == 0):
        raise ValueError("an embedding has zero norm (after mean subtraction): its angle is undefined")
    return np.arccos(np.clip(np.einsum("ij,ij->i", a, b) / norms, -1.0, 1.0)) / math.pi


def angular_kfold_accuracy(emb_a: Any, emb_b: Any, labels: Any, n_folds: int = 10) -> KFoldResult:
    """MagFace ``eval_1v1.py`` literally: for each contiguous fold, subtract the mean of the TRAINING folds'
    embeddings (both sides) from all embeddings, ``dist = arccos(clip(cos, -1, 1)) / pi``, the first threshold of
    ``np.arange(0, 4, 0.01)`` maximising training accuracy of "same iff dist < t", applied to the held-out fold.
    ``fold_thresholds`` in score units (``-t``, comparable with ``angular_scores``)."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    _check_embedding_pairs(a, b)
    _, y = check_scores_labels(np.zeros(a.shape[0]), labels)
    bounds = _fold_bounds(a.shape[0], n_folds)
    k = bounds.size - 1
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    for f in range(k):
        test = np.zeros(a.shape[0], dtype=bool)
        test[bounds[f]:bounds[f + 1]] = True
        mean = np.concatenate([a[~test], b[~test]]).mean(axis=0)
        dist = _angular_distance(a - mean, b - mean)
        # reorder so the held-out fold is the only fold of a two-fold split: [train..., test...]
        order = np.concatenate([np.flatnonzero(~test), np.flatnonzero(test)])
        two = np.array([0, int((~test).sum()), a.shape[0]])
        fa, ft, ftr = _kfold_grid(dist[order], y[order], two, _GRID)
        acc[f], thr[f], train[f] = fa[1], -ft[1], ftr[1]
    return _summarise(acc, thr, train, "kfold-angular", "std")


# ------------------------------------------------------------------------------------------------------ the report


def verification_report(scores: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS,
                        tar_convention: str = "strict", accuracy_convention: str | None = "kfold-exact",
                        n_folds: int | None = 10) -> VerificationReport:
    """Counts, AUC, EER, TAR@FAR (``tar_convention``) and pair accuracy (``accuracy_convention``; skipped, None,
    when ``accuracy_convention`` or ``n_folds`` is None or there are fewer pairs than folds), from one sort."""
    fps, tps, thr = _roc_counts(scores, labels)
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    points = _read_operating_points(fps, tps, thr, n_imp, n_gen, fars, tar_convention)
    _warn_unresolvable(points)
    lf, lt, _ = _with_leading_point(fps, tps, thr)
    accuracy = None
    acc_name = None
    if accuracy_convention is not None:
        acc_name = _ACCURACY_ALIASES.get(accuracy_convention, accuracy_convention)
        if acc_name not in PAIR_ACCURACY_CONVENTIONS:
            raise ValueError(f"unknown accuracy convention {accuracy_convention!r}")
        if acc_name == "best-threshold" or (n_folds is not None and n_imp + n_gen >= n_folds):
            accuracy = pair_accuracy(scores, labels, acc_name, n_folds if n_folds is not None else 10)
    return VerificationReport(n_gen, n_imp, _area_under_curve(lf, lt), _eer_from_counts(lf, lt),
                              {f: p.tar for f, p in points.items()}, points, accuracy,
                              _canonical_tar_convention(tar_convention), acc_name)


@dataclass(frozen=True)
class RocReport(_ToDict):
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


def roc_report(scores: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS, tar_convention: str = "strict",
               warn: bool = True) -> RocReport:
    """ROC, AUC, EER and TAR@FAR (``tar_convention``) from one sort of the scores: what a verification protocol
    reports and plots, without sorting 15.66M IJB-C scores twice (``verification_report`` + ``roc``).

    Same definitions as ``roc``, ``eer``, ``operating_points`` and ``VerificationReport.auc``. ``warn=False``
    leaves unresolvable targets to the caller (they still come back NaN with ``resolvable=False``).
    """
    fps, tps, thr = _roc_counts(scores, labels)
    n_imp, n_gen = int(fps[-1]), int(tps[-1])
    points = _read_operating_points(fps, tps, thr, n_imp, n_gen, fars, tar_convention)
    if warn:
        _warn_unresolvable(points)
    lf, lt, lthr = _with_leading_point(fps, tps, thr)
    return RocReport(n_gen, n_imp, lf / n_imp, lt / n_gen, lthr, _area_under_curve(lf, lt), _eer_from_counts(lf, lt),
                     points, _canonical_tar_convention(tar_convention))


# ------------------------------------------------------------------------------------------ per-pair decisions


def kfold_correct(scores: Any, labels: Any, accuracy: KFoldResult) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, fold)`` per pair: whether the pair is classified right by the threshold ``accuracy`` applied to
    its fold (the held-out decision behind each fold accuracy), and that fold's index.

    ``scores``/``labels``: those ``accuracy`` was computed from, in the same order (folds: contiguous blocks,
    ``numpy.array_split`` sizes; one fold for "best-threshold"); for "kfold-angular" pass
    ``angular_heldout_scores`` (each pair's angular score under its own fold's training mean). The rule is the
    convention's: "kfold-exact"/"best-threshold" same iff ``score > t``; "kfold-grid" same iff
    ``2 - 2*score < grid[j]``; "kfold-angular" same iff ``-score < grid[j]`` (``grid[j]`` the fold's grid point);
    "kfold-youden" genuine right iff ``score > t``, impostor right iff ``score < t``. So, per fold,
    ``correct[fold == f].mean() == accuracy.fold_accuracies[f]`` exactly (same integer counts).
    """
    s, y = check_scores_labels(scores, labels)
    name = accuracy.convention
    k = 1 if name == "best-threshold" else int(accuracy.n_folds)
    if name == "best-threshold":
        bounds = np.array([0, s.size])
    else:
        bounds = _fold_bounds(s.size, k)
    fold = np.repeat(np.arange(k, dtype=np.int32), np.diff(bounds))
    thr = np.asarray(accuracy.fold_thresholds, dtype=np.float64)
    if thr.size != k:
        raise ValueError(f"accuracy has {thr.size} fold thresholds for {k} folds")
    t = thr[fold]
    if name in ("kfold-exact", "best-threshold"):
        same = s > t
    elif name == "kfold-youden":
        return np.where(y, s > t, s < t), fold
    elif name in ("kfold-grid", "kfold-angular"):
        dist = 2.0 - 2.0 * s if name == "kfold-grid" else -s
        grid_t = 2.0 - 2.0 * thr if name == "kfold-grid" else -thr
        j = np.abs(_GRID[None, :] - grid_t[:, None]).argmin(axis=1)  # the grid point each fold used
        same = dist < _GRID[j][fold]
    else:
        raise ValueError(f"unknown accuracy convention {name!r}")
    return same == y, fold


def angular_heldout_scores(emb_a: Any, emb_b: Any, n_folds: int = 10) -> np.ndarray:
    """Each pair's MagFace angular score ``-arccos(cos)/pi`` as ``angular_kfold_accuracy`` scores it when its fold
    is held out (embeddings minus the mean of the OTHER folds' embeddings); feed to ``kfold_correct``."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    _check_embedding_pairs(a, b)
    bounds = _fold_bounds(a.shape[0], n_folds)
    out = np.empty(a.shape[0])
    for f in range(bounds.size - 1):
        test = np.zeros(a.shape[0], dtype=bool)
        test[bounds[f]:bounds[f + 1]] = True
        mean = np.concatenate([a[~test], b[~test]]).mean(axis=0)
        out[test] = -_angular_distance(a - mean, b - mean)[test]  # as angular_kfold_accuracy computes it
    return out


# ------------------------------------------------------------------------------------------- ROC for storage


def downsample_roc(far: Any, tar: Any, thresholds: Any = None, max_points: int = 1000) -> dict[str, np.ndarray]:
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
    if np.isnan(far).any() or np.any(np.diff(far) < 0):
        raise ValueError("downsample_roc: far must be non-decreasing and free of NaN (sort the ROC by FAR first)")
    n = far.size
    if n <= max_points:
        keep = np.arange(n)
    else:
        picks = [np.array([0, n - 1])]
        zero = np.searchsorted(far, 0.0, side="right") - 1  # last point with FAR <= 0
        if zero >= 0:
            picks.append(np.array([zero]))
        positive = far[far > 0]
        if positive.size:
            targets = np.geomspace(positive[0], far[-1], max_points - 3) if far[-1] > positive[0] else positive[:1]
            picks.append(np.searchsorted(far, targets, side="right") - 1)
        keep = np.unique(np.concatenate(picks))
        keep = keep[keep >= 0]
    out = {"far": far[keep], "tar": tar[keep]}
    if thr is not None:
        out["thresholds"] = thr[keep]
    return out
