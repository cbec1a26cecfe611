"""The study's claim measurements: pure functions over scores, embeddings and labels (no files, no protocols).

* :func:`pair_cosines` -- cosine of L2-normalised features for index pairs (the score every protocol uses).
* :func:`score_overlap` -- genuine/impostor histogram overlap (:func:`fr_bench.metrics.distribution_overlap`);
  UNPG claims a smaller overlap than its base head.
* :func:`norm_quality_correlation` -- Spearman correlation of feature norm and image quality (MagFace claims
  the norm measures quality; ``scipy.stats.spearmanr``).
* :func:`class_accuracy` -- closed-set accuracy of held-out images of the training classes, predicted as the class
  weight of largest cosine, split into head and tail classes by training-image count (IR-Softmax claims better
  tail classes under imbalance than softmax).
* :func:`verification_summary` -- EER and best-threshold accuracy of one set of pair scores (for GroupFace's
  group-aware against plain cosine on the same pairs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from fr_bench.metrics import distribution_overlap, eer, pair_accuracy


def pair_cosines(features: np.ndarray | torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    """``cos(f[a], f[b])`` for each row ``(a, b)`` of ``pairs`` (features L2-normalised first), float64."""
    f = torch.as_tensor(np.asarray(features, dtype=np.float64))
    f = F.normalize(f, dim=1)
    p = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
    return (f[p[:, 0]] * f[p[:, 1]]).sum(dim=1).numpy()


def score_overlap(scores: np.ndarray, labels: np.ndarray, bins: int = 200) -> float:
    """Histogram intersection of genuine (``labels`` true) and impostor scores on ``bins`` shared bins (200: the
    protocols' default, so the number matches the distribution plots)."""
    labels = np.asarray(labels, dtype=bool)
    return distribution_overlap(scores[labels], scores[~labels], bins=bins).overlap


def norm_quality_correlation(norms: np.ndarray, quality: np.ndarray) -> float:
    """Spearman rank correlation between feature norms and quality scores (NaN when either is constant)."""
    norms, quality = np.asarray(norms, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    if norms.shape != quality.shape or norms.size < 3:
        raise ValueError(f"need >= 3 matching norms and quality scores, got {norms.shape} and {quality.shape}")
    if np.ptp(norms) == 0 or np.ptp(quality) == 0:
        return float("nan")
    return float(spearmanr(norms, quality).statistic)


def class_accuracy(features: np.ndarray | torch.Tensor, labels: np.ndarray, class_weights: np.ndarray | torch.Tensor,
                   train_counts: np.ndarray) -> dict[str, Any]:
    """Nearest-class-weight (cosine) accuracy of held-out images, overall and on head / tail classes.

    Tail classes: the ``C // 2`` classes with the fewest training images (classes ordered by decreasing count,
    ties by class index, as ``numpy.argsort(-train_counts, kind="stable")``; the tail is the second half); head
    classes the others. Returns counts and rates: ``{"correct", "n", "accuracy", "tail_correct", "tail_n",
    "tail_accuracy", "head_correct", "head_n", "head_accuracy", "tail_classes"}`` (rates from integer counts).
    """
    f = F.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=1)
    w = F.normalize(torch.as_tensor(np.asarray(class_weights, dtype=np.float32)), dim=1)
    pred = (f @ w.T).argmax(dim=1).numpy()
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.asarray(train_counts)
    order = np.argsort(-counts, kind="stable")
    tail_class = np.zeros(counts.size, dtype=bool)
    tail_class[order[counts.size - counts.size // 2:]] = True
    right = pred == labels
    tail = tail_class[labels]
    out: dict[str, Any] = {"tail_classes": int(tail_class.sum())}
    for name, mask in (("", np.ones_like(right)), ("tail_", tail), ("head_", ~tail)):
        n, c = int(mask.sum()), int(right[mask].sum())
        out[f"{name}correct"], out[f"{name}n"] = c, n
        out[f"{name}accuracy"] = c / n if n else float("nan")
    return out


def verification_summary(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"eer", "accuracy"}``: equal error rate and best-threshold accuracy (optimistic, same pairs for both)."""
    labels = np.asarray(labels, dtype=bool)
    acc = pair_accuracy(scores, labels, convention="best-threshold")
    return {"eer": float(eer(scores, labels)), "accuracy": float(acc.mean)}
