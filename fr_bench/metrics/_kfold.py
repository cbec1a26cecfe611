"""The threshold searches behind the k-fold pair accuracy conventions (private; public: ``accuracy``).

Each returns per-fold ``(held-out accuracy, threshold, training accuracy)`` arrays for contiguous folds given by
their boundaries (``_common.contiguous_folds``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# insightface verification.py / MagFace eval_1v1.py threshold grid.
GRID = np.arange(0, 4, 0.01)
YOUDEN_STEPS = 1000


def kfold_exact(s: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        thr[f] = cut_threshold_sparse(values, count_all, fg, fi, c)
        acc[f] = (np.count_nonzero(fs[fy] > thr[f]) + np.count_nonzero(fs[~fy] <= thr[f])) / fs.size
    return acc, thr, train


def cut_threshold_sparse(values: np.ndarray, count_all: np.ndarray, fold_gen: np.ndarray, fold_imp: np.ndarray,
                          c: int) -> float:
    """``cut_threshold`` where a value is present in the training folds iff it holds more pairs overall than in
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


def best_cut(values: np.ndarray, gen: np.ndarray, imp: np.ndarray) -> tuple[int, float]:
    """``(most correct, threshold)`` over the cuts between distinct ``values`` (ascending; ``gen``/``imp`` the
    genuine/impostor counts per value) for the rule same iff ``score > threshold``; the smallest cut on ties.
    Cut ``c`` lies after the first ``c`` values: correct = genuine above + impostors at or below."""
    correct = np.empty(values.size + 1, dtype=np.int64)
    correct[0] = 0
    np.cumsum(imp - gen, out=correct[1:])
    correct += int(gen.sum())
    c = int(np.argmax(correct))
    return int(correct[c]), cut_threshold(values, gen + imp, c)


def cut_threshold(values: np.ndarray, present: np.ndarray, c: int) -> float:
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


def kfold_grid(dist: np.ndarray, y: np.ndarray, bounds: np.ndarray, grid: np.ndarray
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


def kfold_youden(s: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FaceX-Zoo: per fold, training thresholds ``min + step * k`` (``step = (max - min) / 1000``, ``k = 1..1000``,
    min/max over the training scores), the first maximising ``TPR - FPR`` (rates of ``score > t``); held-out
    accuracy ``(#genuine > t + #impostor < t) / fold size`` (a score equal to ``t`` counts as an error)."""
    gen_sorted, imp_sorted = np.sort(s[y]), np.sort(s[~y])
    k = bounds.size - 1
    fold_min = np.array([s[bounds[f]:bounds[f + 1]].min() for f in range(k)])
    fold_max = np.array([s[bounds[f]:bounds[f + 1]].max() for f in range(k)])
    steps = np.arange(1, YOUDEN_STEPS + 1)
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    for f in range(k):
        others = np.arange(k) != f
        lo, hi = fold_min[others].min(), fold_max[others].max()
        ts = lo + (hi - lo) / YOUDEN_STEPS * steps
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


