"""Quality assessment: the Error-versus-Discard Characteristic (EDC, called ERC in older papers) of a pairwise
quality score, in the ISO/IEC 29794-1:2024 reading (default) and in the MagFace paper's reading.

Scores: higher = more similar; a pair is a *match* iff ``score >= threshold`` (as everywhere in
``fr_bench.metrics``). Labels: 1 mated (genuine), 0 non-mated (impostor). Pairwise quality: higher = better; pairs
are discarded lowest quality first. Rates come from integer counts.

Which pairs the discard fraction counts (ISO convention, ``discard_over``): ``"class"`` (default) follows the
standard's authors: FNM-EDC is computed over the MATED comparisons only and FM-EDC over the NON-MATED ones only, so
the fraction is a share of that class (pairs of the other class cannot change the error and do not dilute the
fraction axis). ``"all"`` is this project's earlier reading (a share of all pairs, the other class discarded too
by the same quality order), kept for comparison with results stored before the change.

Sources (looked up 2026-11-30; the standard's clause text was NOT available to us, so no default below is quoted
from it):

- ISO/IEC 29794-1:2024, third edition 2024-05, catalogue page https://www.iso.org/standard/79519.html.
- Schlett, Rathgeb, Tapia, Busch, "Considerations on the evaluation of biometric quality assessment algorithms",
  IEEE T-BIOM (ieeexplore 10330743; arXiv 2303.13294): an EDC depends on an error type (FNMR or FMR), a set of
  comparisons (mated ones for FNM-EDC, non-mated ones for FM-EDC) and a comparison threshold "corresponding to a
  starting error"; comparisons are progressively discarded by the pair's LOWEST sample quality (the ``min`` rule,
  our default) and the error is recomputed on the remaining comparisons; a discard fraction limit is chosen for the
  pAUC (stepwise vs linear interpolation is discussed; higher limits give more stable rankings).
- The same group's reference code, github.com/dasec/quality-assessment-evaluation, ``edc.py`` (commit 2a66097,
  2023-11): a run of identical pairwise qualities is discarded at once (as here: a tie is never split); ``min``
  pairwise quality by default; pAUC of the step curve up to the limit (as here); its example's defaults are a
  starting error of 0.05 and a pAUC discard limit of 0.20 (ours for FNM-EDC). Against it: (1) it is fed the
  comparisons of one class, so its fraction is a share of that class: FOLLOWED (``discard_over="class"``). Kept
  different on purpose: (2) its threshold is ``np.quantile`` of the scores (linear interpolation: the starting
  error is approximate); here the exact integer-count rule issue 13 demands (starting error <= target, see
  :func:`iso_threshold`); (3) its "theoretical best" area is that under the line ``max(0, e0 - x)``; here the
  exact pair-by-pair best ``(E - k) / (N - k)`` (error pairs discarded first); (4) it appends the point (1, 0) at
  full discard; here the error with no pair of the class left is NaN (undefined, not 0).
- ``starting_error=1e-3`` for FM-EDC is this project's choice (issue 13's example); no source default was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fr_bench.metrics._checks import check_scores_labels, to_numpy
from fr_bench.metrics._common import ToDict, allowed_count

EDC_CONVENTIONS = ("iso", "magface")
DISCARD_OVER = ("class", "all")
PAIR_QUALITY_RULES = ("min", "mean", "product")
DEFAULT_STARTING_ERROR = {"fnm": 0.05, "fm": 1e-3}
MAGFACE_FRACTIONS = np.arange(0.0, 0.98, 0.05)  # 0, 0.05, ..., 0.95 as the MagFace evaluation script builds them


@dataclass(frozen=True)
class EDCResult(ToDict):
    """One EDC curve.

    ``discard_fractions``: realised discarded shares, ascending, starting at 0, of the counted class's pairs
    (``discard_over="class"``) or of all pairs (``"all"``; MagFace); ``errors``: the error rate (FNMR or FMR) on the
    pairs that remain at each fraction (NaN where no pair of the counted class remains);
    ``threshold``: the comparison threshold (ISO: one float, fixed before discarding; MagFace: one angular-distance
    threshold per fraction); ``pauc``: area under the step curve up to ``discard_limit``; ``pauc_best``,
    ``pauc_relative`` (= ``pauc - pauc_best``) and ``best_errors`` (theoretical best at the realised fractions;
    ``"class"``: NaN at full discard, as ``errors``): only with ``relative_to_best=True``, else None;
    ``discard_over``: ``"class"`` or ``"all"`` (see the module docstring)."""

    discard_fractions: np.ndarray
    errors: np.ndarray
    threshold: Any
    pauc: float
    discard_limit: float
    error: str
    starting_error: float
    convention: str
    pauc_best: float | None = None
    pauc_relative: float | None = None
    best_errors: np.ndarray | None = None
    discard_over: str = "class"


def pair_quality(q_a: Any, q_b: Any, *, how: str = "min") -> np.ndarray:
    """Pairwise quality from the two samples' qualities: ``"min"`` (default: the weaker sample limits the
    comparison), ``"mean"`` or ``"product"``. Float64 array; ``ValueError`` on a length mismatch or NaN/inf."""
    a = to_numpy(q_a, "q_a").astype(np.float64).ravel()
    b = to_numpy(q_b, "q_b").astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pair_quality: q_a and q_b differ in length: {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("pair_quality: qualities contain NaN or inf values")
    if how == "min":
        return np.minimum(a, b)
    if how == "mean":
        return (a + b) / 2.0
    if how == "product":
        return a * b
    raise ValueError(f"pair_quality: unknown rule {how!r}; expected one of {list(PAIR_QUALITY_RULES)}")


def _check_quality(pair_quality: Any, n: int) -> np.ndarray:
    """Validated pairwise qualities, 1-D; float32 stays float32 (sorting it orders and groups ties exactly as its
    exact float64 widening would), anything else becomes float64 without a copy where it already is."""
    q = to_numpy(pair_quality, "pair_quality")
    if q.dtype != np.float32:
        q = q.astype(np.float64, copy=False)
    if q.ndim != 1 or q.size != n:
        raise ValueError(f"pair_quality must be 1-D with one value per pair: got shape {q.shape} for {n} pairs")
    if not np.isfinite(q).all():
        raise ValueError(f"pair_quality contains {int((~np.isfinite(q)).sum())} NaN or inf values")
    return q


def iso_threshold(scores: np.ndarray, labels: np.ndarray, error: str, starting_error: float) -> float:
    """The ISO EDC threshold, fixed once on all pairs (``score >= threshold`` is a match).

    ``"fnm"``: ``k = floor(starting_error * n_mated)``; the HIGHEST threshold at which at most ``k`` mated pairs are
    non-matches (score < threshold): the ``(k+1)``-th smallest mated score (``+inf`` if ``k = n_mated``), so the
    starting FNMR is ``<= starting_error``. ``"fm"``: ``k = floor(starting_error * n_non_mated)``; the LOWEST score
    of any pair at which at most ``k`` non-mated pairs match: the smallest score strictly above the ``(k+1)``-th
    largest non-mated score (``+inf`` if none; the lowest score if ``k = n_non_mated``), i.e. the engine's
    ``"strict"`` TAR@FAR reading, so the starting FMR is ``<= starting_error``."""
    if error == "fnm":
        mated = scores[labels]
        k = allowed_count(starting_error, mated.size)
        return float(np.partition(mated, k)[k]) if k < mated.size else float("inf")
    non_mated = scores[~labels]
    k = allowed_count(starting_error, non_mated.size)
    if k >= non_mated.size:
        return float(scores.min())
    j = non_mated.size - 1 - k  # the (k+1)-th largest, as an ascending index
    above = scores[scores > np.partition(non_mated, j)[j]]
    return float(above.min()) if above.size else float("inf")


def _step_area(fractions: np.ndarray, errors: np.ndarray, limit: float) -> float:
    """Area up to ``limit`` of the step curve whose value ``errors[j]`` holds on ``[fractions[j], fractions[j+1])``
    (the last value holds up to ``limit``). ``fractions`` strictly ascending: only the steps starting below
    ``limit`` have a width, so only that prefix is read (the same terms, summed in the same order)."""
    m = int(np.searchsorted(fractions, limit, side="left"))  # steps starting below the limit
    right = np.minimum(fractions[1:m + 1], limit)
    if right.size < m:  # the last step starts below the limit: it holds up to it
        right = np.append(right, limit)
    width = right - fractions[:m]  # > 0 but where two fractions coincide (MagFace's fixed fractions, tiny n)
    used = width > 0
    if used.all():
        return float(np.sum(errors[:m] * width))
    return float(np.sum(errors[:m][used] * width[used]))


def _best_area(n_err: int, n_class: int, n: int, limit: float) -> float:
    """Area up to ``limit`` of the theoretical best curve: error pairs discarded first, one pair at a time, so after
    ``k`` discards the error is ``(E - k) / (N_class - k)`` for ``k < E`` and 0 after (value at ``k/n`` held until
    ``(k+1)/n``)."""
    k = np.arange(min(n_err, int(np.ceil(limit * n)) + 1), dtype=np.float64)
    width = np.clip(np.minimum((k + 1) / n, limit) - k / n, 0.0, None)
    return float(np.sum((n_err - k) / (n_class - k) * width))


def _discard_steps(q: np.ndarray, *, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(qs, removed)``: the qualities sorted ascending, and ``removed[j]`` = pairs discarded at realised step
    ``j`` (0 at step 0; step ``j >= 1`` removes every pair whose quality is <= the ``j``-th smallest distinct
    value, so a tie is never split). One value sort (of ``q`` itself with ``in_place``), no argsort."""
    if in_place:
        q.sort()
    qs = q if in_place else np.sort(q)
    is_start = np.empty(qs.size + 1, dtype=bool)  # first sorted position of each distinct value, and the end
    is_start[0] = is_start[-1] = True
    np.not_equal(qs[1:], qs[:-1], out=is_start[1:-1])
    return qs, np.flatnonzero(is_start)  # the start of group j = pairs below its value = removed before it


def _step_of(qs: np.ndarray, removed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The realised step at which each pair of quality ``values`` is discarded (index into ``removed``), sorted:
    searched in the sorted qualities, so it costs ``O(len(values) log n)`` however many steps there are."""
    at = np.searchsorted(qs, np.sort(values), side="right")  # pairs with quality <= the value
    return np.searchsorted(removed, at, side="left")  # removed[step] == at


def _piecewise(steps: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Cut steps ``0 .. size-1`` into runs on which every count ``#(steps[i] <= j)`` is constant: ``(starts,
    lengths, counts)`` with ``counts[i][r]`` the count on run ``r`` (a few thousand runs for a few thousand
    counted pairs, however many steps there are)."""
    starts = np.union1d(np.zeros(1, dtype=np.int64), np.concatenate(steps))
    lengths = np.diff(np.append(starts, size))
    return starts, lengths, [np.searchsorted(s, starts, side="right") for s in steps]


def _errors_all(y: np.ndarray, q: np.ndarray, is_err: np.ndarray, error: str) -> tuple[np.ndarray, np.ndarray]:
    """``discard_over="all"``: ``(removed, errors)`` per realised step over all pairs. After one sort of the
    qualities, only the few mated and error pairs are located among the steps (non-mated counts are all pairs minus
    mated ones), and the full-length curve is written by runs on which the error's numerator and the mated count are
    constant. The same integers, hence the same floats, as cumulative counts over an argsort (the tests check the
    bytes against that reading)."""
    qs, removed = _discard_steps(q)
    n_mated, n_err = int(y.sum()), int(is_err.sum())
    n_cls = n_mated if error == "fnm" else q.size - n_mated
    starts, lengths, (gone_mated, gone_err) = _piecewise(
        [_step_of(qs, removed, q[y]), _step_of(qs, removed, q[is_err])], removed.size)
    del qs
    num = n_err - gone_err  # error pairs left, per run
    with np.errstate(invalid="ignore", divide="ignore"):
        if error == "fnm":  # numerator and denominator both constant on a run
            left = n_cls - gone_mated
            errors = np.repeat(np.where(left > 0, num / left, np.nan), lengths)
        else:  # non-mated left = non-mated - (all removed - mated removed)
            left = np.repeat(n_cls + gone_mated, lengths)
            left -= removed
            errors = np.repeat(num.astype(np.float64), lengths)  # exact: counts < 2**53
            errors /= left
            errors[int(np.argmin(left)):] = np.nan  # left falls to 0 (every non-mated pair gone) and stays
    return removed, errors


def _errors_class(q_cls: np.ndarray, q_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``discard_over="class"``: ``(removed, errors)`` per realised step over the counted class's pairs only
    (qualities ``q_cls``, sorted here in place; ``q_err`` those of its error pairs): error = error pairs left /
    class pairs left, NaN at the last step (every pair of the class gone)."""
    _, removed = _discard_steps(q_cls, in_place=True)
    _, lengths, (gone_err,) = _piecewise([_step_of(q_cls, removed, q_err)], removed.size)
    errors = np.repeat((q_err.size - gone_err).astype(np.float64), lengths)  # exact: counts < 2**53
    left = q_cls.size - removed
    with np.errstate(invalid="ignore", divide="ignore"):
        errors /= left
    errors[-1] = np.nan  # left == 0: undefined, not 0
    return removed, errors


def _iso_edc(y: np.ndarray, s: np.ndarray, q: np.ndarray, error: str, starting_error: float,
             limit: float, best: bool, over: str) -> EDCResult:
    """ISO EDC by counting (threshold fixed once on all pairs, the same in both readings); ``over`` picks which
    pairs are discarded and make up the fraction's denominator."""
    thr = iso_threshold(s, y, error, starting_error)
    is_err = (y & (s < thr)) if error == "fnm" else (~y & (s >= thr))
    n_err = int(is_err.sum())
    if over == "class":
        cls = y if error == "fnm" else ~y
        q_cls = q[cls]  # a copy, sorted in place
        n_cls = n = q_cls.size
        removed, errors = _errors_class(q_cls, q[is_err])
        del q_cls
    else:
        n = q.size
        n_cls = int(y.sum()) if error == "fnm" else n - int(y.sum())
        removed, errors = _errors_all(y, q, is_err, error)
    fractions = removed / n
    pauc = _step_area(fractions, errors, limit)
    extra: dict[str, Any] = {}
    if best:
        extra = _best_curve(removed, n_err, n_cls, n, limit, pauc)
        if over == "class":
            extra["best_errors"][-1] = np.nan  # every pair of the class gone, as in ``errors``
    return EDCResult(fractions, errors, thr, pauc, limit, error, starting_error, "iso", discard_over=over, **extra)


def _best_curve(removed: np.ndarray, n_err: int, n_cls: int, n: int, limit: float, pauc: float) -> dict[str, Any]:
    """The theoretical best at the realised steps: ``k = min(removed, E)`` error pairs gone, error ``(E - k) /
    (N_class - k)``; computed on the steps before ``removed`` reaches ``E``, constant after."""
    p = int(np.searchsorted(removed, n_err, side="left"))  # first step with removed >= E
    k = np.append(removed[:p], n_err)  # the steps before, then the constant k = E
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(n_cls - k > 0, (n_err - k) / (n_cls - k), np.nan)
    best_err = np.empty(removed.size, dtype=np.float64)
    best_err[:p] = values[:p]
    best_err[p:] = values[p]
    pauc_best = _best_area(n_err, n_cls, n, limit)
    return {"pauc_best": pauc_best, "pauc_relative": pauc - pauc_best, "best_errors": best_err}


def _magface_edc(y: np.ndarray, s: np.ndarray, q: np.ndarray, limit: float) -> EDCResult:
    """MagFace's curve. The distances are put in ascending-quality order once, split by class; dropping the first
    ``start`` pairs then leaves a suffix of each (no gather per fraction), and the threshold is a selection."""
    order = np.argsort(q, kind="stable")
    y_o = y[order]
    dist_o = np.arccos(np.clip(s[order].astype(np.float64), -1.0, 1.0)) / np.pi
    neg_o, pos_o = dist_o[~y_o], dist_o[y_o]
    mated_before = np.concatenate([[0], np.cumsum(y_o)])  # mated pairs among the first j in quality order
    del dist_o
    n = q.size
    errors, thresholds, fractions = [], [], []
    for u in MAGFACE_FRACTIONS:
        start = int(u * n)
        gone_mated = int(mated_before[start])
        neg, pos = neg_o[start - gone_mated:], pos_o[gone_mated:]
        fractions.append(start / n)
        if neg.size == 0 or pos.size == 0:
            thresholds.append(np.nan)
            errors.append(np.nan)
            continue
        i = (neg.size - 1) // 10 // 10 // 10  # the i-th smallest: a partition finds it without a full sort
        t = np.partition(neg, i)[i]
        thresholds.append(float(t))
        errors.append(int(np.count_nonzero(pos >= t)) / pos.size)
    fr, er = np.asarray(fractions), np.asarray(errors)
    return EDCResult(fr, er, np.asarray(thresholds), _step_area(fr, er, limit), limit, "fnm", 1e-3, "magface",
                     discard_over="all")


def edc(labels: Any, scores: Any, pair_quality: Any, *, error: str = "fnm", starting_error: float | None = None,
        discard_limit: float = 0.20, convention: str = "iso", relative_to_best: bool = False,
        discard_over: str | None = None) -> EDCResult:
    """Error-versus-Discard Characteristic of a pairwise quality score.

    ``convention="iso"`` (ISO/IEC 29794-1:2024, default): the threshold is fixed ONCE on all pairs from
    ``starting_error`` (``error="fnm"``: FNMR on mated pairs, default 0.05; ``error="fm"``: FMR on non-mated pairs,
    default 1e-3), read with the exact count ``floor(rate * n)`` (see :func:`iso_threshold`; ``score >= threshold``
    is a match). Pairs are then discarded in ascending ``pair_quality``, all pairs of one quality value together (a
    tie is never split), and the error (FNMR: mated non-matches / remaining mated; FMR: non-mated matches /
    remaining non-mated) is recomputed on what remains at each realised fraction, by cumulative counts over one
    sort. ``discard_over`` (ISO; None means ``"class"``): ``"class"`` (the standard's authors' reading): only the
    counted class's pairs are discarded and the fraction is a share of them (mated for FNM, non-mated for FM);
    ``"all"`` (this project's earlier reading): all pairs are discarded, the fraction is a share of all pairs. The
    threshold and the error at fraction 0 are the same in both. Where no pair of the counted class remains the
    error is NaN (undefined, not 0), and a ``pauc`` whose range reaches such a step is NaN (``"class"``: only at
    full discard). ``pauc``: area of the step curve (the error at a realised fraction holds until the next one)
    over ``[0, discard_limit]``. ``relative_to_best``: also the area of the theoretical best discarding (error
    pairs removed first, one pair at a time, with the same fixed threshold) and ``pauc - best``.

    ``convention="magface"`` (the MagFace paper's evaluation; FNMR only, FMR 1e-3 built in): fractions ``u`` = 0,
    0.05, ..., 0.95; at each the first ``int(u * n)`` pairs in ascending quality are dropped (ties broken by a
    stable sort, so a tie CAN be split); the threshold is RE-estimated on what remains: angular distances
    ``arccos(score)/pi`` of the remaining non-mated pairs sorted ascending, threshold = the one at index
    ``(m - 1) // 10 // 10 // 10`` (``m`` of them); FNMR = share of remaining mated pairs whose distance is not below
    it. Not comparable with the ISO curve: the moving threshold keeps the FMR near 1e-3 on the kept set, so the
    curve mixes the quality's effect on mated and on non-mated pairs (the ISO curve holds the threshold fixed and
    shows the error change due to discarding alone), the fractions are fixed rather than realised, and ties split.
    ``scores`` must then be cosine similarities. ``threshold`` holds one distance per fraction. It always discards
    from all pairs: ``discard_over`` left at None (or ``"all"``) is accepted, ``"class"`` is a ``ValueError``.

    ``ValueError`` for labels not in {0, 1}, length mismatches, NaN/inf, a set without both classes, unknown names.
    """
    if convention not in EDC_CONVENTIONS:
        raise ValueError(f"unknown EDC convention {convention!r}; expected one of {list(EDC_CONVENTIONS)}")
    if error not in DEFAULT_STARTING_ERROR:
        raise ValueError(f"unknown EDC error {error!r}; expected 'fnm' or 'fm'")
    if not 0.0 < float(discard_limit) <= 1.0:
        raise ValueError(f"discard_limit must lie in (0, 1], got {discard_limit}")
    if discard_over not in (None, *DISCARD_OVER):
        raise ValueError(f"unknown discard_over {discard_over!r}; expected one of {list(DISCARD_OVER)}")
    if convention == "magface" and discard_over == "class":
        raise ValueError("convention='magface' discards from all pairs (as its script does): "
                         "discard_over='class' is for convention='iso'")
    s, y = check_scores_labels(scores, labels, keep_float32=True)
    q = _check_quality(pair_quality, s.size)
    if convention == "magface":
        if error != "fnm" or starting_error not in (None, 1e-3) or relative_to_best:
            raise ValueError("convention='magface' is FNM-EDC at a built-in FMR of 1e-3, with no best curve: "
                             "leave error, starting_error and relative_to_best at their defaults")
        return _magface_edc(y, s, q, float(discard_limit))
    rate = DEFAULT_STARTING_ERROR[error] if starting_error is None else float(starting_error)
    allowed_count(rate, 1)  # validates 0 <= rate <= 1
    return _iso_edc(y, s, q, error, rate, float(discard_limit), relative_to_best, discard_over or "class")
