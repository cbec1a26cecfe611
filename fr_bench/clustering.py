"""Clustering face features by identity with scikit-learn, at a cosine-similarity threshold (given, fixed, or swept).

The algorithms are scikit-learn's, never written here; this module only converts the threshold and tidies labels.

* ``"agglomerative"``: ``sklearn.cluster.AgglomerativeClustering(n_clusters=None, metric="cosine",
  linkage="average", distance_threshold=1 - t)``. Two clusters are merged while their average linkage distance is
  strictly below ``1 - t`` (scikit-learn: the threshold is the distance "at or above which clusters will not be
  merged"): their mean cosine similarity over all cross pairs is strictly above ``t``.
* ``"dbscan"``: ``sklearn.cluster.DBSCAN(eps=1 - t, min_samples=m, metric="cosine")``. Two items are neighbours when
  their cosine distance is at most ``1 - t`` (similarity ``>= t``); an item with at least ``m`` items in its
  neighbourhood (itself included: scikit-learn's count) is a core point. DBSCAN leaves items that are neither core
  points nor neighbours of one as noise (label -1): here EACH NOISE ITEM BECOMES ITS OWN SINGLETON CLUSTER (a face
  nobody else matches is one identity), and the count of such items is reported (``n_noise``).

Threshold conversion: ``t`` is a cosine SIMILARITY in [-1, 1); scikit-learn takes the cosine DISTANCE
``1 - cos(a, b)`` (its ``metric="cosine"``), so both algorithms get ``1 - t`` (in float64; a pair whose similarity
equals ``t`` up to rounding may fall on either side). Cluster ids are renumbered 0, 1, ... in order of first
appearance, so the output depends only on the partition.

Thresholds, in the order of honesty:

* given by the user: the honest number;
* :func:`threshold_from_pairs` (the default of ``frbench cluster``): the threshold with the best pair ACCURACY on the
  protocol's own verification pairs (:func:`fr_bench.metrics.pair_accuracy`, ``convention="best-threshold"``:
  same iff score > t, t the midpoint of the best gap between distinct scores, the smallest on ties). It never looks
  at the clustering's F-score; on the demo and folder protocols those pairs are drawn from the clustered images
  themselves, so it is not held out (the result says so);
* :func:`sweep`: every threshold of a grid, the best F-score kept: an ORACLE figure, flagged optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


__all__ = ["CRITERIA", "DEFAULT_GRID", "METHODS", "OPTIMISTIC_FLAG", "Clustering", "SweepResult", "cluster", "sweep",
           "threshold_from_pairs"]

#: Clustering algorithms, the default first.
METHODS = ("agglomerative", "dbscan")
#: Scores :func:`sweep` may maximise (keys of :func:`fr_bench.metrics.clustering_scores`).
CRITERIA = ("bcubed_f", "pairwise_f")
#: The sweep's default grid of cosine-similarity thresholds: 0.00, 0.02, ..., 0.98.
DEFAULT_GRID = tuple(round(0.02 * k, 2) for k in range(50))
#: DBSCAN's ``min_samples`` default (scikit-learn's own default).
DEFAULT_MIN_SAMPLES = 5

OPTIMISTIC_FLAG = ("optimistic: the threshold was swept and the best F-score kept, using the true identities "
                   "(an oracle figure, not a held-out one)")


@dataclass
class Clustering:
    """One clustering: ``labels`` (cluster id per item, 0..n_clusters-1 in order of first appearance), the
    ``method``, the similarity ``threshold`` and the ``distance`` given to scikit-learn, ``n_noise`` (DBSCAN noise
    items made singletons; 0 for agglomerative) and the scikit-learn parameters used."""

    labels: np.ndarray
    method: str
    threshold: float
    distance: float
    n_noise: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0, 1, ... in order of first appearance (int64)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]


def _check(features: Any, threshold: float, method: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array (items x dimensions), got shape {x.shape}")
    if not np.isfinite(x).all() or (np.linalg.norm(x, axis=1) == 0).any():
        raise ValueError("features hold NaN/inf or all-zero rows: cosine distance is undefined for them")
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose one of {', '.join(METHODS)}")
    if not (-1.0 <= float(threshold) < 1.0):
        raise ValueError(f"threshold {threshold!r} must be a cosine similarity in [-1, 1) (distance 1 - t > 0)")
    return x


def cluster(features: Any, *, method: str = "agglomerative", threshold: float,
            min_samples: int = DEFAULT_MIN_SAMPLES) -> Clustering:
    """Cluster the rows of ``features`` at cosine-similarity ``threshold`` (module docstring: the exact rules).

    ``features``: one row per item (any scale: cosine ignores the norm). ``min_samples`` applies to DBSCAN only.
    One item is one cluster. Raises ``ValueError`` on an unknown method, a threshold outside [-1, 1) or rows that
    are zero or not finite.
    """
    from sklearn.cluster import DBSCAN, AgglomerativeClustering

    x = _check(features, threshold, method)
    distance = 1.0 - float(threshold)
    if x.shape[0] == 1:
        return Clustering(np.zeros(1, dtype=np.int64), method, float(threshold), distance)
    if method == "agglomerative":
        params = {"n_clusters": None, "metric": "cosine", "linkage": "average", "distance_threshold": distance}
        raw = AgglomerativeClustering(**params).fit_predict(x)
        return Clustering(_first_appearance(raw), method, float(threshold), distance, 0, params)
    if int(min_samples) < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples!r}")
    params = {"eps": distance, "min_samples": int(min_samples), "metric": "cosine"}
    raw = DBSCAN(**params).fit_predict(x).astype(np.int64)
    noise = raw < 0
    raw[noise] = raw.max(initial=-1) + 1 + np.arange(int(noise.sum()))  # each noise item: its own cluster
    return Clustering(_first_appearance(raw), method, float(threshold), distance, int(noise.sum()), params)


def threshold_from_pairs(scores: Any, labels: Any) -> tuple[float, float]:
    """``(threshold, accuracy)``: the cosine threshold with the best accuracy over verification pairs (``scores``
    cosine similarities, ``labels`` genuine = True), as :func:`fr_bench.metrics.pair_accuracy` with
    ``convention="best-threshold"`` finds it (same iff score > t; the midpoint of the best gap, smallest on ties).

    Raises ``ValueError`` when the best cut lies outside the scores (one class only, or a useless set of pairs).
    """
    from fr_bench.metrics import pair_accuracy  # lazily: `frbench --help` must not import torch

    acc = pair_accuracy(scores, labels, convention="best-threshold")
    t = float(np.asarray(acc.fold_thresholds)[0])
    if not np.isfinite(t) or not -1.0 <= t < 1.0:
        raise ValueError(f"the verification pairs give no usable threshold (best cut at {t}); pass a threshold")
    return t, float(acc.mean)


@dataclass
class SweepResult:
    """A sweep over ``thresholds``: ``scores[i]`` the :func:`fr_bench.metrics.clustering_scores` at
    ``thresholds[i]``, ``n_clusters[i]``; the ``best`` index maximises ``criterion`` (the first grid threshold on
    ties), ``best_clustering`` its clustering. Always ``optimistic``: the identities chose the threshold."""

    thresholds: list[float]
    scores: list[dict[str, float]]
    n_clusters: list[int]
    criterion: str
    best: int
    best_clustering: Clustering
    optimistic: bool = True

    @property
    def best_threshold(self) -> float:
        return self.thresholds[self.best]

    @property
    def best_scores(self) -> dict[str, float]:
        return self.scores[self.best]

    def curve(self) -> dict[str, list[float]]:
        """The sweep as columns (for a result file): thresholds, n_clusters and every score."""
        out: dict[str, list[float]] = {"thresholds": list(self.thresholds), "n_clusters": list(self.n_clusters)}
        for key in self.scores[0]:
            out[key] = [s[key] for s in self.scores]
        return out


def sweep(features: Any, labels_true: Any, *, method: str = "agglomerative",
          thresholds: Sequence[float] = DEFAULT_GRID, criterion: str = "bcubed_f",
          min_samples: int = DEFAULT_MIN_SAMPLES) -> SweepResult:
    """Cluster at every threshold of ``thresholds`` and keep the one with the best ``criterion`` (``"bcubed_f"``
    by default, or ``"pairwise_f"``) against ``labels_true``: an optimistic oracle figure (flagged), never the
    default threshold. Each threshold is one scikit-learn run (agglomerative: O(n^2) memory and time each)."""
    from fr_bench.metrics import clustering_scores

    if criterion not in CRITERIA:
        raise ValueError(f"unknown sweep criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    grid = [float(t) for t in thresholds]
    if not grid:
        raise ValueError("the sweep needs at least one threshold")
    results, scores = [], []
    for t in grid:
        c = cluster(features, method=method, threshold=t, min_samples=min_samples)
        results.append(c)
        scores.append(clustering_scores(labels_true, c.labels))
    values = np.array([s[criterion] for s in scores])
    best = int(np.flatnonzero(values == values.max())[0])
    return SweepResult(grid, scores, [c.n_clusters for c in results], criterion, best, results[best])
