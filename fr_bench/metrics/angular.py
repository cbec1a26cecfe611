"""MagFace's angular pair accuracy: ``-arccos(cos)/pi`` of mean-subtracted embeddings, 10 contiguous folds, the
insightface grid (convention "kfold-angular"). It takes the RAW embeddings (not L2-normalised, no mirror image
fused), as MagFace's feature files keep the norm: the mean subtracted is that of the raw features.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fr_bench.metrics._checks import check_scores_labels, to_numpy
from fr_bench.metrics._common import contiguous_folds
from fr_bench.metrics._kfold import GRID, kfold_grid
from fr_bench.metrics.accuracy import KFoldResult, summarise

__all__ = ["angular_heldout_scores", "angular_kfold_accuracy", "angular_scores"]

def angular_scores(emb_a: Any, emb_b: Any, *, subtract_mean: bool = True) -> np.ndarray:
    """MagFace-style similarity ``-arccos(cos) / pi`` (in [-1, 0], higher = more similar) of pairs
    ``(emb_a[i], emb_b[i])``, where ``cos`` is the cosine of the two embeddings after subtracting the mean of all
    ``2 * n`` embeddings of the pair set (if ``subtract_mean``), clipped to [-1, 1]. Computed in float64."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    check_embedding_pairs(a, b)
    if subtract_mean:
        mean = np.concatenate([a, b]).mean(axis=0)
        a, b = a - mean, b - mean
    return -angular_distance(a, b)


def check_embedding_pairs(a: np.ndarray, b: np.ndarray) -> None:
    """``ValueError`` unless ``a`` and ``b`` are non-empty finite 2-D arrays of one shape."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must be 2-D arrays of the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("no embedding pairs: emb_a is empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("embeddings contain NaN or inf values")


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``arccos(clip(cos, -1, 1)) / pi``; ``ValueError`` for a zero-norm row."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if np.any(norms == 0):
        raise ValueError("an embedding has zero norm (after mean subtraction): its angle is undefined")
    return np.arccos(np.clip(np.einsum("ij,ij->i", a, b) / norms, -1.0, 1.0)) / math.pi


def angular_kfold_accuracy(emb_a: Any, emb_b: Any, labels: Any, *, n_folds: int = 10) -> KFoldResult:
    """MagFace ``eval_1v1.py`` literally: for each contiguous fold, subtract the mean of the TRAINING folds'
    embeddings (both sides) from all embeddings, ``dist = arccos(clip(cos, -1, 1)) / pi``, the first threshold of
    ``np.arange(0, 4, 0.01)`` maximising training accuracy of "same iff dist < t", applied to the held-out fold.
    ``fold_thresholds`` in score units (``-t``, comparable with ``angular_scores``)."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    check_embedding_pairs(a, b)
    _, y = check_scores_labels(np.zeros(a.shape[0]), labels)
    bounds = contiguous_folds(a.shape[0], n_folds)
    k = bounds.size - 1
    acc, thr, train = np.empty(k), np.empty(k), np.empty(k)
    for f in range(k):
        test = np.zeros(a.shape[0], dtype=bool)
        test[bounds[f]:bounds[f + 1]] = True
        mean = np.concatenate([a[~test], b[~test]]).mean(axis=0)
        dist = angular_distance(a - mean, b - mean)
        # reorder so the held-out fold is the only fold of a two-fold split: [train..., test...]
        order = np.concatenate([np.flatnonzero(~test), np.flatnonzero(test)])
        two = np.array([0, int((~test).sum()), a.shape[0]])
        fa, ft, ftr = kfold_grid(dist[order], y[order], two, GRID)
        acc[f], thr[f], train[f] = fa[1], -ft[1], ftr[1]
    return summarise(acc, thr, train, "kfold-angular", "std")


def angular_heldout_scores(emb_a: Any, emb_b: Any, *, n_folds: int = 10) -> np.ndarray:
    """Each pair's MagFace angular score ``-arccos(cos)/pi`` as ``angular_kfold_accuracy`` scores it when its fold
    is held out (embeddings minus the mean of the OTHER folds' embeddings); feed to ``kfold_correct``."""
    a = to_numpy(emb_a, "emb_a").astype(np.float64)
    b = to_numpy(emb_b, "emb_b").astype(np.float64)
    check_embedding_pairs(a, b)
    bounds = contiguous_folds(a.shape[0], n_folds)
    out = np.empty(a.shape[0])
    for f in range(bounds.size - 1):
        test = np.zeros(a.shape[0], dtype=bool)
        test[bounds[f]:bounds[f + 1]] = True
        mean = np.concatenate([a[~test], b[~test]]).mean(axis=0)
        out[test] = -angular_distance(a - mean, b - mean)[test]  # as angular_kfold_accuracy computes it
    return out


