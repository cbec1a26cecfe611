"""fr_bench.clustering: scikit-learn's agglomerative clustering and DBSCAN at a cosine threshold, on hand-made
points whose clusters are known by construction, cross-checked against scipy's average linkage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from fr_bench.clustering import DEFAULT_GRID, OPTIMISTIC_FLAG, cluster, sweep, threshold_from_pairs
from fr_bench.metrics import clustering_scores


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three tight blobs along the axes of 3-D space (within-blob cosine > 0.98, across < 0.2), interleaved."""
    base = np.eye(3)
    rng = np.random.default_rng(3)
    truth = np.array([2, 0, 1, 0, 2, 1, 1, 0, 2])
    x = base[truth] + rng.uniform(-0.05, 0.05, size=(9, 3))
    return x * rng.uniform(0.5, 3.0, size=(9, 1)), truth  # any scale: cosine ignores the norm


def test_blobs_are_found_exactly_and_numbered_by_first_appearance():
    x, _ = _blobs()
    expected = [0, 1, 2, 1, 0, 2, 2, 1, 0]  # the truth [2,0,1,...] renumbered in order of first appearance
    for method in ("agglomerative", "dbscan"):
        c = cluster(x, method=method, threshold=0.5, min_samples=2)
        assert c.labels.tolist() == expected and c.n_clusters == 3 and c.n_noise == 0


def test_the_threshold_is_a_similarity_given_to_sklearn_as_distance_one_minus_t():
    x = np.array([[1.0, 0.0], [0.6, 0.8]])  # cosine exactly 0.6
    for method in ("agglomerative", "dbscan"):
        below = cluster(x, method=method, threshold=0.59, min_samples=2)
        above = cluster(x, method=method, threshold=0.61, min_samples=2)
        assert below.labels.tolist() == [0, 0] and above.labels.tolist() == [0, 1]
        assert below.distance == pytest.approx(0.41) and above.distance == pytest.approx(0.39)
    agg = cluster(x, threshold=0.59)
    assert agg.params == {"n_clusters": None, "metric": "cosine", "linkage": "average", "distance_threshold": 1 - 0.59}
    assert cluster(x, method="dbscan", threshold=0.59, min_samples=2).params["eps"] == 1 - 0.59


def test_average_linkage_does_not_chain_where_dbscan_does():
    # A-B cos(20 deg) = 0.94, B-C cos(60) = 0.5, A-C cos(80) = 0.17. At t = 0.4: A and B merge; {A,B} to C has
    # mean similarity (0.17 + 0.5) / 2 = 0.34 < 0.4, so average linkage stops; DBSCAN links B-C (0.5 >= 0.4).
    x = np.array([_unit(0), _unit(20), _unit(80)])
    assert cluster(x, method="agglomerative", threshold=0.4).labels.tolist() == [0, 0, 1]
    assert cluster(x, method="dbscan", threshold=0.4, min_samples=2).labels.tolist() == [0, 0, 0]
    assert cluster(x, method="agglomerative", threshold=0.3).labels.tolist() == [0, 0, 0]  # 0.34 > 0.3


def test_dbscan_noise_items_become_singletons():
    x = np.array([_unit(0), _unit(2), _unit(4), _unit(6), _unit(90), _unit(180)])
    c = cluster(x, method="dbscan", threshold=0.9, min_samples=3)
    assert c.labels.tolist() == [0, 0, 0, 0, 1, 2] and c.n_noise == 2 and c.n_clusters == 3
    everyone = cluster(x, method="dbscan", threshold=0.9, min_samples=10)  # no core point: all noise
    assert everyone.labels.tolist() == list(range(6)) and everyone.n_noise == 6
    assert clustering_scores([0, 0, 0, 0, 1, 2], c.labels)["bcubed_f"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agglomerative_matches_scipy_average_linkage(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 5)) + 2.0 * np.repeat(rng.normal(size=(4, 5)), 10, axis=0)
    z = linkage(x, method="average", metric="cosine")
    heights = np.sort(z[:, 2])
    for k in (10, 25, 35):  # a cut midway between two merge heights: no tie at the threshold
        d = (heights[k] + heights[k + 1]) / 2
        ours = cluster(x, threshold=1 - d).labels
        ref = fcluster(z, t=d, criterion="distance")
        assert clustering_scores(ref, ours)["pairwise_f"] == 1.0
        assert clustering_scores(ours, ref)["nmi"] == pytest.approx(1.0)
        assert np.unique(ours).size == 40 - (k + 1)


def test_one_item_is_one_cluster_and_bad_input_is_refused():
    assert cluster(np.ones((1, 4)), threshold=0.5).labels.tolist() == [0]
    with pytest.raises(ValueError, match="unknown clustering method 'kmeans'"):
        cluster(np.eye(3), method="kmeans", threshold=0.5)
    with pytest.raises(ValueError, match=r"in \[-1, 1\)"):
        cluster(np.eye(3), threshold=1.0)
    with pytest.raises(ValueError, match="all-zero rows"):
        cluster(np.array([[1.0, 0.0], [0.0, 0.0]]), threshold=0.5)


def test_sweep_keeps_the_best_f_and_is_flagged_optimistic():
    x, truth = _blobs()
    sw = sweep(x, truth, thresholds=[0.999999, 0.5, -0.5])
    assert sw.optimistic and "optimistic" in OPTIMISTIC_FLAG
    assert sw.n_clusters[1] == 3 and sw.n_clusters[2] == 1
    assert sw.best == 1 and sw.best_threshold == 0.5 and sw.best_scores["bcubed_f"] == 1.0
    assert sw.best_clustering.labels.tolist() == [0, 1, 2, 1, 0, 2, 2, 1, 0]
    # one cluster: BCubed recall 1, precision = mean share of the own identity in the one cluster = 1/3
    assert sw.scores[2]["bcubed_precision"] == pytest.approx(1 / 3) and sw.scores[2]["bcubed_recall"] == 1.0
    assert sw.n_clusters[0] == 9 and sw.curve()["thresholds"] == [0.999999, 0.5, -0.5]
    assert len(sw.curve()["pairwise_f"]) == 3
    assert sweep(x, truth, criterion="pairwise_f").thresholds == list(DEFAULT_GRID)
    with pytest.raises(ValueError, match="unknown sweep criterion"):
        sweep(x, truth, criterion="nmi")


def _brute_best_threshold(scores, labels):
    """The smallest cut of best accuracy (same iff score > t) among midpoints of sorted distinct scores."""
    values = np.unique(scores)
    cuts = np.concatenate([[-np.inf], (values[:-1] + values[1:]) / 2, [np.inf]])
    acc = [np.mean((scores > t) == labels) for t in cuts]
    return cuts[int(np.argmax(acc))], max(acc)


@pytest.mark.parametrize(("scores", "labels"), [
    ([0.9, 0.7, 0.4, 0.3], [1, 1, 0, 0]),
    ([0.9, 0.5, 0.6, 0.2, 0.55, 0.1], [1, 1, 0, 0, 1, 0]),
    ([0.3, 0.3, 0.8, 0.8, 0.1], [0, 1, 1, 1, 0]),
])
def test_threshold_from_pairs_is_the_best_accuracy_cut(scores, labels):
    s, y = np.asarray(scores), np.asarray(labels, dtype=bool)
    t, acc = threshold_from_pairs(s, y)
    t_ref, acc_ref = _brute_best_threshold(s, y)
    assert t == pytest.approx(t_ref) and acc == pytest.approx(acc_ref)


def test_threshold_from_pairs_refuses_useless_pairs():
    with pytest.raises(ValueError, match="both classes"):
        threshold_from_pairs(np.array([0.2, 0.5]), np.array([True, True]))
    with pytest.raises(ValueError, match="no usable threshold"):  # genuine below impostor: the best cut is -inf
        threshold_from_pairs(np.array([0.1, 0.9]), np.array([True, False]))
