"""Pair accuracy of a 1:1 verification set under a named convention (``PAIR_ACCURACY_CONVENTIONS``), and the
per-pair decisions behind it (``kfold_correct``). One function, one default: ``pair_accuracy(..., convention=
"kfold-grid")`` (insightface's 10-fold procedure, the one most published tables use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fr_bench.metrics._checks import check_scores_labels
from fr_bench.metrics._common import ToDict, contiguous_folds, resolve_convention
from fr_bench.metrics._kfold import GRID, best_cut, kfold_exact, kfold_grid, kfold_youden

__all__ = ["DEFAULT_ACCURACY", "KFoldResult", "PAIR_ACCURACY_CONVENTIONS", "kfold_correct", "pair_accuracy"]

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
ACCURACY_ALIASES = {"insightface": "kfold-grid", "grid": "kfold-grid", "exact": "kfold-exact",
                     "youden": "kfold-youden", "facex-zoo": "kfold-youden", "magface": "kfold-angular",
                     "oracle": "best-threshold"}
#: The one default pair accuracy convention (insightface's 10-fold procedure, the most published one).
DEFAULT_ACCURACY = "kfold-grid"

# insightface verification.py / MagFace eval_1v1.py threshold grid.

@dataclass(frozen=True)
class KFoldResult(ToDict):
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


def summarise(acc: np.ndarray, thr: np.ndarray, train: np.ndarray, convention: str, spread: str,
              optimistic: bool = False) -> KFoldResult:
    """A ``KFoldResult`` from per-fold held-out accuracies, thresholds and training accuracies."""
    k = acc.size
    sem = float(np.std(acc, ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    return KFoldResult(float(np.mean(acc)), float(np.std(acc)), sem, acc, thr, train, convention, k, spread,
                       optimistic)


def canonical_accuracy_convention(convention: str) -> str:
    """The ``PAIR_ACCURACY_CONVENTIONS`` name of ``convention`` (aliases resolved); ``ValueError`` if unknown."""
    return resolve_convention(convention, PAIR_ACCURACY_CONVENTIONS, ACCURACY_ALIASES, "accuracy")


def pair_accuracy(scores: Any, labels: Any, *, convention: str = DEFAULT_ACCURACY, n_folds: int = 10) -> KFoldResult:
    """Pair accuracy (a fraction) under a named convention (``PAIR_ACCURACY_CONVENTIONS``; default "kfold-grid").

    k-fold conventions: folds are contiguous blocks in the given order (official LFW/CFP/AgeDB/CALFW layout; sizes
    as ``numpy.array_split``, i.e. scikit-learn ``KFold(shuffle=False)``); each fold is scored with the threshold
    chosen on the other folds; accuracy = correct / pairs.

    - "kfold-grid" (aliases "insightface", "grid"): insightface ``verification.py``: squared L2 distance of unit
      embeddings, computed from cosine scores as ``dist = 2 - 2 * score``; grid ``np.arange(0, 4, 0.01)``; same iff
      ``dist < t`` (i.e. ``score > 1 - t / 2``); the first best grid point; ``fold_thresholds`` in score units
      ``1 - t / 2``. Caveat: insightface computes ``dist`` from the embeddings, so a pair lying exactly on a grid
      boundary can fall on the other side by rounding. Scores must be cosine similarities. Spread: population std.
    - "kfold-exact" ("exact"): same iff ``score > t``; ``t`` maximises training accuracy over every gap between
      distinct training scores (midpoints, plus -inf / +inf): the true optimum, the smallest such threshold on
      ties. The midpoint of ``lo < hi`` is ``lo + (hi - lo) / 2`` in float64 (``lo`` if that rounds up to
      ``hi``). Spread: population std.
    - "kfold-youden" ("youden", "facex-zoo"): FaceX-Zoo: ``t`` maximises TPR - FPR over 1,000 thresholds spanning
      the training score range; spread reported: ``sem`` = std(ddof=1) / sqrt(n_folds).
    - "best-threshold" ("oracle"): no folds; the exact search on the whole set, scored on the same set
      (``n_folds`` ignored; one "fold"; ``optimistic=True``; std 0, sem NaN).
    - "kfold-angular" ("magface"): scores must come from ``angular_scores`` (``-arccos(cos)/pi`` after
      subtracting the pair set's mean RAW embedding); MagFace's search: ``dist = -score``, grid
      ``np.arange(0, 4, 0.01)``, same iff ``dist < t``, first best; ``fold_thresholds`` in score units ``-t``.
      MagFace subtracts the mean of the TRAINING folds' raw embeddings per fold; ``angular_scores`` subtracts the
      whole pair set's mean (use ``angular_kfold_accuracy`` for MagFace's per-fold mean).
    """
    name = canonical_accuracy_convention(convention)
    s, y = check_scores_labels(scores, labels)
    if name == "best-threshold":
        return _oracle(s, y)
    bounds = contiguous_folds(s.size, n_folds)
    if name == "kfold-exact":
        acc, thr, train = kfold_exact(s, y, bounds)
        return summarise(acc, thr, train, name, "std")
    if name == "kfold-youden":
        acc, thr, train = kfold_youden(s, y, bounds)
        return summarise(acc, thr, train, name, "sem")
    if name == "kfold-grid":
        acc, t, train = kfold_grid(2.0 - 2.0 * s, y, bounds, GRID)
        return summarise(acc, 1.0 - t / 2.0, train, name, "std")
    acc, t, train = kfold_grid(-s, y, bounds, GRID)  # kfold-angular
    return summarise(acc, -t, train, name, "std")


def _oracle(s: np.ndarray, y: np.ndarray) -> KFoldResult:
    """Best accuracy over all thresholds on the whole set (same iff score > t), smallest best threshold."""
    asc = np.sort(s)
    values = asc[np.concatenate([[True], asc[1:] != asc[:-1]])]
    gen = np.bincount(np.searchsorted(values, s[y]), minlength=values.size)
    imp = np.bincount(np.searchsorted(values, s[~y]), minlength=values.size)
    n_correct, t = best_cut(values, gen, imp)
    a = np.array([n_correct / s.size])
    return summarise(a, np.array([t]), a.copy(), "best-threshold", "std", optimistic=True)


# ------------------------------------------------------------------------------------------ per-pair decisions


def kfold_correct(scores: Any, labels: Any, *, accuracy: KFoldResult) -> tuple[np.ndarray, np.ndarray]:
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
        bounds = contiguous_folds(s.size, k)
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
        j = np.abs(GRID[None, :] - grid_t[:, None]).argmin(axis=1)  # the grid point each fold used
        same = dist < GRID[j][fold]
    else:
        raise ValueError(f"unknown accuracy convention {name!r}")
    return same == y, fold


