"""clustering_scores against hand-worked examples, O(n^2) brute force, scikit-learn, and the degenerate cases."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import pair_confusion_matrix

from fr_bench.metrics.clustering import clustering_scores, pair_counts

KEYS = {"pairwise_precision", "pairwise_recall", "pairwise_f", "bcubed_precision", "bcubed_recall", "bcubed_f",
        "nmi"}


def f_of(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def brute_force(t, p):
    """Independent O(n^2) reading of the definitions, exact fractions, loops over items and pairs."""
    n = len(t)
    both = same_c = same_t = 0
    for i in range(n):
        for j in range(i + 1, n):
            st, sp = t[i] == t[j], p[i] == p[j]
            both += st and sp
            same_c += sp
            same_t += st
    pw_p = Fraction(both, same_c) if same_c else Fraction(1)
    pw_r = Fraction(both, same_t) if same_t else Fraction(1)
    bp = br = Fraction(0)
    for i in range(n):
        cluster = [j for j in range(n) if p[j] == p[i]]
        ident = [j for j in range(n) if t[j] == t[i]]
        bp += Fraction(sum(t[j] == t[i] for j in cluster), len(cluster))
        br += Fraction(sum(p[j] == p[i] for j in ident), len(ident))
    bp, br = bp / n, br / n
    return {"pairwise_precision": float(pw_p), "pairwise_recall": float(pw_r), "pairwise_f": f_of(pw_p, pw_r),
            "bcubed_precision": float(bp), "bcubed_recall": float(br), "bcubed_f": f_of(bp, br),
            "counts": (both, same_c, same_t)}


def entropy_nmi(t, p):
    """NMI from its entropy definition (arithmetic mean of the two entropies), written out here."""
    n = len(t)
    joint, ct, cp = {}, {}, {}
    for a, b in zip(t, p):
        joint[(a, b)] = joint.get((a, b), 0) + 1
        ct[a] = ct.get(a, 0) + 1
        cp[b] = cp.get(b, 0) + 1
    h = lambda counts: -sum(c / n * math.log(c / n) for c in counts)  # noqa: E731
    mi = sum(c / n * math.log(c * n / (ct[a] * cp[b])) for (a, b), c in joint.items())
    ht, hp = h(ct.values()), h(cp.values())
    if ht == 0 and hp == 0:
        return 1.0
    return mi / ((ht + hp) / 2)


def test_hand_worked_mixed():
    # identity 0: 2 in A, 1 in B; identity 1: 2 in B; identity 2: 1 in C.
    s = clustering_scores([0, 0, 0, 1, 1, 2], ["A", "A", "B", "B", "B", "C"])
    assert set(s) == KEYS
    # same-both pairs: C(2,2)+C(2,2)=2; same-cluster: C(2,2)+C(3,2)=4; same-identity: C(3,2)+C(2,2)=4
    assert s["pairwise_precision"] == 0.5 and s["pairwise_recall"] == 0.5 and s["pairwise_f"] == 0.5
    # precision per item: 1, 1, 1/3, 2/3, 2/3, 1 -> 14/18; recall: 2/3, 2/3, 1/3, 1, 1, 1 -> 14/18
    assert s["bcubed_precision"] == pytest.approx(7 / 9, abs=1e-15)
    assert s["bcubed_recall"] == pytest.approx(7 / 9, abs=1e-15)
    assert s["bcubed_f"] == pytest.approx(7 / 9, abs=1e-15)


def test_hand_worked_split_identity():
    # one identity of 4 split into {0,1}, {2}, {3}
    s = clustering_scores([7, 7, 7, 7], [0, 0, 1, 2])
    assert s["pairwise_precision"] == 1.0
    assert s["pairwise_recall"] == pytest.approx(1 / 6, abs=1e-15)  # 1 of C(4,2)=6 pairs kept together
    assert s["pairwise_f"] == pytest.approx(2 / 7, abs=1e-15)
    assert s["bcubed_precision"] == 1.0
    assert s["bcubed_recall"] == pytest.approx(3 / 8, abs=1e-15)  # (1/2 + 1/2 + 1/4 + 1/4) / 4
    assert s["bcubed_f"] == pytest.approx(6 / 11, abs=1e-15)
    assert s["nmi"] == 0.0  # H(true) = 0, so no mutual information over a positive mean entropy


def test_hand_worked_merge():
    # two identities {0,0}, {1,1,1} merged into one cluster
    s = clustering_scores([0, 0, 1, 1, 1], [5, 5, 5, 5, 5])
    assert s["pairwise_precision"] == pytest.approx(4 / 10, abs=1e-15)  # (1 + 3) of C(5,2)=10
    assert s["pairwise_recall"] == 1.0
    assert s["bcubed_precision"] == pytest.approx((2 * 2 / 5 + 3 * 3 / 5) / 5, abs=1e-15)  # 13/25
    assert s["bcubed_recall"] == 1.0


@pytest.mark.parametrize("seed", range(12))
def test_random_against_brute_force_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 70))
    t = rng.integers(0, int(rng.integers(1, 12)), n)
    p = rng.integers(0, int(rng.integers(1, 12)), n)
    s, ref = clustering_scores(t, p), brute_force(list(t), list(p))
    for k in KEYS - {"nmi"}:
        assert s[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(t, p), abs=1e-12)
    assert s["nmi"] == pytest.approx(entropy_nmi(list(t), list(p)), abs=1e-9)
    c = pair_counts(t, p)
    assert (c["same_both"], c["same_cluster"], c["same_identity"]) == ref["counts"]
    assert c["total"] == n * (n - 1) // 2


@pytest.mark.parametrize("seed", range(6))
def test_pair_counts_match_sklearn_pair_confusion(seed):
    rng = np.random.default_rng(100 + seed)
    n = 2000
    t, p = rng.integers(0, 40, n), rng.integers(0, 60, n)
    c = pair_counts(t, p)
    m = pair_confusion_matrix(t, p)  # ordered pairs: each unordered pair counted twice
    assert 2 * c["same_both"] == m[1, 1]
    assert 2 * c["same_cluster"] == m[1, 1] + m[0, 1]
    assert 2 * c["same_identity"] == m[1, 1] + m[1, 0]
    assert 2 * c["total"] == m.sum()


def test_all_singletons_predicted():
    t = [0, 0, 1, 1, 1, 2]
    s = clustering_scores(t, np.arange(6))
    assert s["pairwise_precision"] == 1.0  # documented: no merge made
    assert s["pairwise_recall"] == 0.0 and s["pairwise_f"] == 0.0
    assert s["bcubed_precision"] == 1.0
    assert s["bcubed_recall"] == pytest.approx((2 * 1 / 2 + 3 * 1 / 3 + 1) / 6, abs=1e-15)  # 1/2


def test_all_singletons_both_sides():
    s = clustering_scores(["a", "b", "c"], [3, 1, 2])
    assert all(s[k] == 1.0 for k in KEYS), s


def test_one_big_cluster():
    t = [0, 1, 1, 2, 2, 2]
    s = clustering_scores(t, np.zeros(6, dtype=int))
    assert s["pairwise_recall"] == 1.0 and s["bcubed_recall"] == 1.0
    assert s["pairwise_precision"] == pytest.approx((0 + 1 + 3) / 15, abs=1e-15)
    assert s["bcubed_precision"] == pytest.approx((1 + 4 + 9) / 6 / 6, abs=1e-15)
    assert s["nmi"] == 0.0


def test_one_identity_one_cluster_and_one_item():
    assert all(v == 1.0 for v in clustering_scores([4, 4, 4], ["x", "x", "x"]).values())
    assert all(v == 1.0 for v in clustering_scores([4], ["x"]).values())


def test_perfect_clustering_with_other_names():
    t = np.array(["bob", "ann", "bob", "cy", "ann"])
    s = clustering_scores(t, [9, 2, 9, 0, 2])
    assert all(v == pytest.approx(1.0, abs=1e-12) for v in s.values()), s


def test_label_permutation_and_swap_invariance():
    rng = np.random.default_rng(7)
    t, p = rng.integers(0, 8, 300), rng.integers(0, 10, 300)
    s = clustering_scores(t, p)
    t2 = rng.permutation(100)[t] * 13 + 5  # rename identities
    p2 = np.array([f"c{v}" for v in rng.permutation(10)[p]])  # rename clusters as strings
    order = rng.permutation(300)  # reorder items
    s2 = clustering_scores(t2[order], p2[order])
    for k in KEYS:
        assert s2[k] == pytest.approx(s[k], abs=1e-12), k
    # swapping the roles of truth and prediction swaps precision and recall
    sw = clustering_scores(p, t)
    for a, b in (("pairwise_precision", "pairwise_recall"), ("bcubed_precision", "bcubed_recall")):
        assert sw[a] == pytest.approx(s[b], abs=1e-12) and sw[b] == pytest.approx(s[a], abs=1e-12)


def test_large_input_exact_counts():
    n = 200_000  # C(n, 2) ~ 2e10: counts must stay exact integers, and no O(n^2) work
    c = pair_counts(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    assert c["same_both"] == c["same_cluster"] == c["same_identity"] == c["total"] == n * (n - 1) // 2
    rng = np.random.default_rng(3)
    s = clustering_scores(rng.integers(0, 50_000, n), rng.integers(0, 60_000, n))
    assert 0.0 <= s["pairwise_precision"] <= 1.0 and 0.0 <= s["bcubed_f"] <= 1.0


def test_torch_input():
    torch = pytest.importorskip("torch")
    t, p = [0, 0, 1, 1], [1, 1, 1, 0]
    assert clustering_scores(torch.tensor(t), torch.tensor(p)) == clustering_scores(t, p)


@pytest.mark.parametrize("t, p, match", [
    ([0, 1, 2], [0, 1], "differ in length"),
    ([], [], "at least one item"),
    ([[0, 1]], [[0, 1]], "1-D"),
    ([0.0, np.nan], [0, 1], "NaN"),
])
def test_bad_input(t, p, match):
    with pytest.raises(ValueError, match=match):
        clustering_scores(t, p)
