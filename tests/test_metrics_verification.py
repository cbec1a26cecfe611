"""Verification metrics against independent computations: scikit-learn, brute force, literal re-implementations of
the insightface / FaceX-Zoo / MagFace evaluation loops, hand-worked cases, and hypothesis properties."""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold

from fr_bench.metrics import (
    angular_scores,
    eer,
    operating_points,
    pair_accuracy,
    roc,
    tar_at_far,
    verification_report,
)
from fr_bench.metrics import (
    PAIR_ACCURACY_CONVENTIONS,
    TAR_CONVENTIONS,
    KFoldResult,
    OperatingPoint,
    angular_kfold_accuracy,
)
from fr_bench.metrics._roc import read_operating_points, roc_counts_numpy, roc_counts_torch

FARS = (1e-3, 1e-2, 1e-1, 0.25, 0.5)


def tied_data(seed: int, n: int = 400, levels: int = 25, p_gen: float = 0.4):
    """Scores on a coarse grid (many ties), genuine shifted up."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p_gen).astype(int)
    y[0], y[1] = 1, 0
    s = np.round(rng.normal(size=n) + 1.2 * y, 1)
    s = np.clip(s, -levels / 10, levels / 10)
    return s, y


def silent(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------------------ ROC, AUC


@pytest.mark.parametrize("seed", range(6))
def test_roc_identical_to_sklearn_full_curve(seed):
    s, y = tied_data(seed)
    far, tar, thr = roc(s, y)
    f2, t2, th2 = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(far, f2)
    np.testing.assert_array_equal(tar, t2)
    np.testing.assert_array_equal(thr, th2)


def test_roc_float32_bool_labels_and_continuous_scores():
    rng = np.random.default_rng(7)
    y = rng.random(3000) < 0.1
    s = (rng.normal(size=3000) + y).astype(np.float32)
    for out, ref in zip(roc(s, y), roc_curve(y, s, drop_intermediate=False)):
        np.testing.assert_array_equal(out, ref)


def test_roc_hand_worked_with_ties():
    far, tar, thr = roc([0.9, 0.8, 0.8, 0.3], [1, 0, 1, 0])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.8, 0.3])
    np.testing.assert_array_equal(far, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(tar, [0, 0.5, 1, 1])


def test_all_equal_scores():
    s, y = np.full(10, 0.5), np.array([1, 0] * 5)
    far, tar, thr = roc(s, y)
    np.testing.assert_array_equal(far, [0, 1])
    np.testing.assert_array_equal(tar, [0, 1])
    assert eer(s, y) == 0.5
    # the only threshold with <= floor(0.5 * 5) = 2 false accepts is +inf: accept nothing
    p = operating_points(s, y, fars=(0.5,))[0.5]
    assert (p.tar, p.far, p.threshold) == (0.0, 0.0, math.inf)
    # fold 0 = (g i g i g), fold 1 = (i g i g i): each training fold's majority wins, both folds score 2/5
    res = pair_accuracy(s, y, convention="kfold-exact", n_folds=2)
    np.testing.assert_array_equal(res.fold_thresholds, [math.inf, -math.inf])
    np.testing.assert_array_equal(res.fold_accuracies, [0.4, 0.4])


@pytest.mark.parametrize("seed", range(4))
def test_auc_equals_sklearn(seed):
    s, y = tied_data(seed)
    rep = verification_report(s, y, fars=(0.1,), accuracy_convention=None)
    assert rep.auc == pytest.approx(roc_auc_score(y, s), rel=1e-13, abs=0)


# ------------------------------------------------------------------------------------------------------- TAR@FAR


def brute_strict(s, y, far):
    """Max TAR over every threshold (distinct scores and +inf) with false accepts <= floor(far * n_imp), exact."""
    n_imp, n_gen = int((y == 0).sum()), int((y == 1).sum())
    budget = math.floor(Fraction(repr(far)) * n_imp)
    best = (0, 0, math.inf)  # (tp, fp, threshold)
    for t in sorted(set(s.tolist())):
        fp = int(((s >= t) & (y == 0)).sum())
        tp = int(((s >= t) & (y == 1)).sum())
        if fp <= budget and tp > best[0]:
            best = (tp, fp, t)
    return best[0] / n_gen, best[1] / n_imp, best[2]


@pytest.mark.parametrize("seed", range(5))
def test_strict_against_brute_force(seed):
    s, y = tied_data(seed, n=300)
    points = silent(operating_points, s, y, fars=FARS, convention="strict")
    for f in FARS:
        p = points[f]
        if math.floor(Fraction(repr(f)) * int((y == 0).sum())) == 0:
            assert not p.resolvable and math.isnan(p.tar)
            continue
        tar, far, thr = brute_strict(s, y, f)
        assert p.tar == tar and p.far == far
        if tar > 0:
            assert p.threshold == thr


def test_strict_budget_is_integer_not_float():
    # 0.29 * 100 == 28.999999999999996 in floats: a float floor would allow only 28 false accepts
    imp = np.arange(100, dtype=float)  # impostors 0..99
    gen = imp + 0.5  # one genuine just above each impostor
    s = np.concatenate([imp, gen])
    y = np.r_[np.zeros(100), np.ones(100)]
    p = operating_points(s, y, fars=(0.29,))[0.29]
    assert p.far == 0.29  # exactly 29 false accepts allowed
    assert p.tar == 0.30  # threshold 70.5: genuines 70.5..99.5 accepted, impostors 71..99 (29) falsely accepted
    assert p.threshold == 70.5


def nearest_literal(s, y, far):
    """The insightface IJB reading: sklearn default ROC, flipped, first point with the nearest FPR."""
    fpr, tpr, _ = roc_curve(y, s)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    _, i = min(zip(abs(fpr - far), range(len(fpr))))
    return tpr[i], fpr[i]


@pytest.mark.parametrize("seed", range(6))
def test_nearest_reproduces_sklearn_reading(seed):
    s, y = tied_data(seed, n=500, levels=40)
    points = silent(operating_points, s, y, fars=FARS, convention="insightface")
    for f in FARS:
        if not points[f].resolvable:
            continue
        tar, fpr = nearest_literal(s, y, f)
        assert points[f].tar == tar  # bit-for-bit
        assert points[f].far == fpr


def test_nearest_can_be_optimistic_and_reports_realised_far():
    # 16 impostors 0..15, genuines just above the top three: every ROC point is a corner. At FAR 0.1 the nearest
    # FPR is 2/16 = 0.125 (above the target), strict stops at 1/16.
    s = np.r_[np.arange(16.0), 15.5, 14.5, 13.5]
    y = np.r_[np.zeros(16), 1, 1, 1]
    p = operating_points(s, y, fars=(0.1,), convention="nearest")[0.1]
    strict = operating_points(s, y, fars=(0.1,), convention="strict")[0.1]
    assert (p.tar, p.far) == nearest_literal(s, y, 0.1)
    assert p.far == 0.125 and p.tar == 1.0 and p.threshold == 13.5
    assert strict.far == 1 / 16 and strict.tar == 2 / 3 and strict.threshold == 14.5


@pytest.mark.parametrize("seed", range(4))
def test_interpolated_is_np_interp_on_full_roc(seed):
    s, y = tied_data(seed, n=300)
    far, tar, thr = roc(s, y)
    points = silent(operating_points, s, y, fars=FARS, convention="interpolated")
    for f in FARS:
        p = points[f]
        if not p.resolvable:
            continue
        assert p.tar == np.interp(f, far, tar)
        assert p.far == f
        # threshold lies between the thresholds of the bracketing ROC points
        i = np.searchsorted(far, f, side="right") - 1
        if far[i] != f and np.isfinite(thr[i]):
            assert thr[i + 1] <= p.threshold <= thr[i]


def test_unresolvable_targets_nan_and_one_warning():
    s, y = tied_data(0, n=300)  # ~180 impostors
    with pytest.warns(UserWarning, match="not resolvable") as record:
        out = tar_at_far(s, y, fars=(1e-4, 1e-3, 1e-2, 1e-1))
    assert len(record) == 1
    assert "0.0001" in str(record[0].message) and "0.001" in str(record[0].message)
    assert math.isnan(out[1e-4]) and math.isnan(out[1e-3]) and not math.isnan(out[1e-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tar_at_far(s, y, fars=(0.1,))  # resolvable: no warning


@pytest.mark.parametrize("convention", ["strict", "nearest", "interpolated"])
def test_resolvability_boundary_is_integer(convention):
    # 500 impostors (K-FACE lists): 1e-3 unresolvable (floor 0.5 = 0), 2e-3 resolvable (floor 1.0 = 1)
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=1000), np.r_[np.ones(500), np.zeros(500)]
    out = silent(tar_at_far, s, y, fars=(1e-3, 2e-3), convention=convention)
    assert math.isnan(out[1e-3]) and not math.isnan(out[2e-3])


def test_tar_at_far_is_view_of_operating_points():
    s, y = tied_data(2)
    for c in ("strict", "nearest", "interpolated"):
        ops = silent(operating_points, s, y, fars=FARS, convention=c)
        tars = silent(tar_at_far, s, y, fars=FARS, convention=c)
        assert list(tars) == list(FARS)
        assert all(isinstance(p, OperatingPoint) for p in ops.values())
        np.testing.assert_array_equal([tars[f] for f in FARS], [ops[f].tar for f in FARS])


def test_kernel_accepts_float_weights_like_replicated_data():
    s, y = tied_data(4, n=200)
    w = np.random.default_rng(0).integers(1, 4, s.size)  # multiplicities, as a bootstrap resample gives
    rs, ry = np.repeat(s, w), np.repeat(y, w)
    values = np.unique(s)[::-1]
    fps = np.array([float(w[(s >= t) & (y == 0)].sum()) for t in values])
    tps = np.array([float(w[(s >= t) & (y == 1)].sum()) for t in values])
    for c in ("strict", "nearest", "interpolated"):
        got = read_operating_points(fps, tps, values, fps[-1], tps[-1], FARS, c)
        ref = silent(operating_points, rs, ry, fars=FARS, convention=c)
        for f in FARS:
            assert got[f].resolvable == ref[f].resolvable
            if ref[f].resolvable:
                assert (got[f].tar, got[f].far, got[f].threshold) == (ref[f].tar, ref[f].far, ref[f].threshold)


# ------------------------------------------------------------------------------------------------------------ EER


def brute_eer(s, y):
    """Intersection of the ROC polyline (FPR, FNR) with FNR == FPR, in exact rationals."""
    n_imp, n_gen = int((y == 0).sum()), int((y == 1).sum())
    pts = [(Fraction(0), Fraction(1))]
    for t in sorted(set(s.tolist()), reverse=True):
        pts.append((Fraction(int(((s >= t) & (y == 0)).sum()), n_imp),
                    1 - Fraction(int(((s >= t) & (y == 1)).sum()), n_gen)))
    for (x0, e0), (x1, e1) in zip(pts, pts[1:]):
        d0, d1 = e0 - x0, e1 - x1
        if d0 >= 0 >= d1:
            if d0 == d1:
                return float(x0)
            w = d0 / (d0 - d1)
            return float(x0 + w * (x1 - x0))
    raise AssertionError("no crossing")


@pytest.mark.parametrize("seed", range(6))
def test_eer_against_brute_force(seed):
    s, y = tied_data(seed, n=200)
    assert eer(s, y) == pytest.approx(brute_eer(s, y), abs=1e-12)


def test_eer_hand_cases():
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0  # separable
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 1.0  # reversed
    # one genuine (single genuine pair) in the middle of 4 impostors: FNR jumps 1 -> 0 at FPR 0.5
    assert eer([0.1, 0.2, 0.5, 0.8, 0.9], [0, 0, 1, 0, 0]) == 0.5


# ------------------------------------------------------------------------------------------------- k-fold accuracy


def folds_of(n, k):
    return [test for _, test in KFold(n_splits=k, shuffle=False).split(np.arange(n))]


def brute_exact_fold(s, y, test):
    """Try every candidate threshold (midpoints of distinct training scores, -inf, +inf); same iff score > t."""
    train = np.setdiff1d(np.arange(s.size), test)
    u = np.unique(s[train])
    cands = [-math.inf] + [(a + b) / 2 for a, b in zip(u[:-1], u[1:])] + [math.inf]
    accs = [np.mean((s[train] > t) == (y[train] == 1)) for t in cands]
    best = max(accs)
    t = cands[accs.index(best)]  # smallest on ties
    return np.mean((s[test] > t) == (y[test] == 1)), best, t


@pytest.mark.parametrize("seed,n,k", [(0, 120, 10), (1, 90, 10), (2, 67, 10), (3, 50, 5)])
def test_kfold_exact_against_brute_force(seed, n, k):
    s, y = tied_data(seed, n=n)
    res = pair_accuracy(s, y, n_folds=k, convention="kfold-exact")
    for f, test in enumerate(folds_of(n, k)):
        acc, train_acc, t = brute_exact_fold(s, y, test)
        assert res.fold_accuracies[f] == acc
        assert res.train_accuracies[f] == pytest.approx(train_acc, abs=1e-15)
        assert res.fold_thresholds[f] == t
    assert res.mean == pytest.approx(np.mean(res.fold_accuracies))
    assert res.std == pytest.approx(np.std(res.fold_accuracies))
    assert res.n_folds == k and res.reported_spread == "std" and not res.optimistic


def test_kfold_exact_skips_long_runs_of_held_out_only_values():
    # fold 0: 150 distinct scores in (0.2, 0.8); fold 1: impostors at 0, genuines at 1. Training on fold 1 cuts
    # between 0 and 1: the midpoint of the TRAINING values (0.5), past 150 values only the held-out fold holds.
    rng = np.random.default_rng(2)
    s = np.r_[rng.uniform(0.2, 0.8, 150), np.zeros(75), np.ones(75)]
    y = np.r_[rng.integers(0, 2, 150), np.zeros(75, int), np.ones(75, int)]
    res = pair_accuracy(s, y, n_folds=2, convention="kfold-exact")
    assert res.fold_thresholds[0] == 0.5
    for f, test in enumerate(folds_of(s.size, 2)):
        acc, train_acc, thr = brute_exact_fold(s, y, test)
        assert (res.fold_accuracies[f], res.fold_thresholds[f]) == (acc, thr)


def test_kfold_hand_worked_two_folds():
    # fold 0: (0.9 g, 0.1 i); fold 1: (0.8 g, 0.7 i). Train on fold 1 -> cut midway 0.75; fold 0 all correct.
    # train on fold 0 -> cut midway 0.5; fold 1: 0.8 g correct, 0.7 i wrong.
    res = pair_accuracy([0.9, 0.1, 0.8, 0.7], [1, 0, 1, 0], n_folds=2, convention="kfold-exact")
    np.testing.assert_array_equal(res.fold_thresholds, [0.75, 0.5])
    np.testing.assert_array_equal(res.fold_accuracies, [1.0, 0.5])
    assert res.mean == 0.75 and res.std == 0.25


def insightface_literal(emb1, emb2, issame, nrof_folds=10):
    """insightface verification.py calculate_roc/calculate_accuracy (pca=0), written out as it loops."""
    thresholds = np.arange(0, 4, 0.01)
    dist = np.sum(np.square(emb1 - emb2), 1)
    accuracy = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(KFold(n_splits=nrof_folds, shuffle=False).split(dist)):
        acc_train = np.zeros(len(thresholds))
        for i, t in enumerate(thresholds):
            pred = np.less(dist[train_set], t)
            act = issame[train_set]
            tp = np.sum(pred & act)
            tn = np.sum(~pred & ~act)
            acc_train[i] = float(tp + tn) / dist[train_set].size
        best = np.argmax(acc_train)
        pred = np.less(dist[test_set], thresholds[best])
        act = issame[test_set]
        accuracy[fold_idx] = float(np.sum(pred & act) + np.sum(~pred & ~act)) / dist[test_set].size
    return accuracy, dist


def unit_pairs(seed, n, dim=8, sep=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, dim))
    same = rng.random(n) < 0.5
    b = np.where(same[:, None], a + sep * rng.normal(size=(n, dim)), rng.normal(size=(n, dim)))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return a, b, same


@pytest.mark.parametrize("seed,n", [(0, 300), (1, 203)])
def test_grid_reproduces_insightface_literal(seed, n):
    a, b, same = unit_pairs(seed, n)
    ref, dist = insightface_literal(a, b, same)
    # rounding caveat: keep the data away from grid boundaries (dist from embeddings vs 2 - 2 cos)
    assert np.min(np.abs(dist * 100 - np.round(dist * 100))) > 1e-6
    cos = np.sum(a * b, axis=1)
    res = pair_accuracy(cos, same.astype(int), convention="kfold-grid")
    np.testing.assert_array_equal(res.fold_accuracies, ref)
    assert res.mean == np.mean(ref) and res.std == np.std(ref)
    assert pair_accuracy(cos, same, convention="kfold-grid").fold_accuracies.tolist() == ref.tolist()
    # thresholds reported in cosine units: same iff cos > 1 - t/2
    grid = np.round((1 - res.fold_thresholds) * 2, 2)
    assert np.all(np.isin(grid, np.round(np.arange(0, 4, 0.01), 2)))


def test_grid_exact_ties_on_grid_points():
    # cosines on a 0.05 lattice put many distances exactly on grid points: "same" needs dist < t strictly
    rng = np.random.default_rng(11)
    y = rng.random(400) < 0.5
    cos = np.round(np.clip(rng.normal(0.3 + 0.4 * y, 0.2), -1, 1) * 20) / 20
    dist = 2.0 - 2.0 * cos
    thresholds = np.arange(0, 4, 0.01)
    assert np.isin(dist, thresholds).sum() > 100
    ref, ref_t = [], []
    for train, test in KFold(n_splits=10).split(dist):
        acc_train = [np.mean(np.less(dist[train], t) == y[train]) for t in thresholds]
        t = thresholds[np.argmax(acc_train)]
        ref.append(np.mean(np.less(dist[test], t) == y[test]))
        ref_t.append(t)
    res = pair_accuracy(cos, y, convention="kfold-grid")
    np.testing.assert_array_equal(res.fold_accuracies, ref)
    np.testing.assert_array_equal(res.fold_thresholds, 1.0 - np.array(ref_t) / 2.0)


def facexzoo_literal(scores, labels, n_folds=10):
    """FaceX-Zoo LFWEvaluator.test_one_model / getThreshold, written out as it loops (fold size n / n_folds)."""
    sc, lab = scores.reshape(n_folds, -1), labels.reshape(n_folds, -1)
    accs, ths = [], []
    for f in range(n_folds):
        keep = np.arange(n_folds) != f
        tr_s, tr_l = sc[keep].flatten(), lab[keep].flatten()
        pos, neg = tr_s[tr_l == 1], tr_s[tr_l == 0]
        lo, hi = np.min(tr_s), np.max(tr_s)
        step = (hi - lo) / 1000
        ts = lo + step * np.array(range(1, 1001))
        tpr = np.array([np.sum(pos > t) / pos.size for t in ts])
        fpr = np.array([np.sum(neg > t) / neg.size for t in ts])
        t = ts[np.argmax(tpr - fpr)]
        te_s, te_l = sc[f], lab[f]
        accs.append((np.sum(te_s[te_l == 1] > t) + np.sum(te_s[te_l == 0] < t)) / te_s.size)
        ths.append(t)
    accs = np.array(accs)
    return accs, np.array(ths), np.std(accs, ddof=1) / np.sqrt(n_folds)


@pytest.mark.parametrize("seed", range(3))
def test_youden_reproduces_facexzoo_literal(seed):
    s, y = tied_data(seed, n=200)
    s = s + np.random.default_rng(seed).normal(scale=0.01, size=s.size) * (seed > 0)  # seed 0 keeps ties
    acc, ths, sem = facexzoo_literal(s, y)
    res = pair_accuracy(s, y, convention="kfold-youden")
    np.testing.assert_array_equal(res.fold_accuracies, acc)
    np.testing.assert_array_equal(res.fold_thresholds, ths)
    assert res.sem == pytest.approx(sem, rel=1e-12) and res.reported_spread == "sem"


def test_youden_threshold_on_a_score_counts_heldout_impostor_as_error():
    # integer scores 0..10 in every fold: thresholds min + k*(max-min)/1000 hit the integers exactly, and
    # FaceX-Zoo scores a held-out impostor equal to the threshold as an error (impostor < t)
    rng = np.random.default_rng(5)
    y = np.tile(np.r_[0, 1, rng.integers(0, 2, 18)], 10)
    s = np.clip(np.round(rng.normal(4 + 3 * y, 2)), 0, 10)
    s[0::20], s[1::20] = 0, 10
    acc, ths, _ = facexzoo_literal(s, y)
    res = pair_accuracy(s, y, convention="kfold-youden")
    np.testing.assert_array_equal(res.fold_thresholds, ths)
    assert np.all(ths == np.round(ths))  # thresholds sit on score values
    np.testing.assert_array_equal(res.fold_accuracies, acc)


def test_best_threshold_oracle_is_flagged_and_brute_forced():
    s, y = tied_data(5, n=150)
    res = pair_accuracy(s, y, convention="best-threshold")
    best = max(np.mean((s > t) == (y == 1)) for t in [-np.inf] + sorted(set(s.tolist())))
    assert res.mean == pytest.approx(best, abs=1e-15)
    assert res.optimistic is True and res.to_dict()["optimistic"] is True
    assert pair_accuracy(s, y, convention="kfold-exact").optimistic is False


def magface_literal(e0, e1, issame, nrof_folds=10):
    """MagFace eval_1v1.py calculate_roc(subtract_mean=True), written out."""
    thresholds = np.arange(0, 4, 0.01)
    accuracy = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(KFold(n_splits=nrof_folds).split(np.arange(len(issame)))):
        mean = np.mean(np.concatenate([e0[train_set], e1[train_set]]), axis=0)
        a, b = e0 - mean, e1 - mean
        sim = np.clip(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), -1.0, 1.0)
        dist = np.arccos(sim) / math.pi
        acc_train = [np.mean(np.less(dist[train_set], t) == issame[train_set]) for t in thresholds]
        t = thresholds[np.argmax(acc_train)]
        accuracy[fold_idx] = np.mean(np.less(dist[test_set], t) == issame[test_set])
    return accuracy


def test_angular_scores_and_magface_literal():
    a, b, same = unit_pairs(3, 200, sep=0.8)
    a, b = a * 3 + 0.2, b * 2 + 0.2  # not unit, shared offset: mean subtraction matters
    mean = np.concatenate([a, b]).mean(0)
    aa, bb = a - mean, b - mean
    cos = np.sum(aa * bb, 1) / np.linalg.norm(aa, axis=1) / np.linalg.norm(bb, axis=1)
    np.testing.assert_allclose(angular_scores(a, b), -np.arccos(np.clip(cos, -1, 1)) / np.pi, atol=1e-14)
    plain = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(angular_scores(a, b, subtract_mean=False), -np.arccos(plain) / np.pi, atol=1e-14)
    ref = magface_literal(a, b, same)
    res = angular_kfold_accuracy(a, b, same.astype(int))
    np.testing.assert_array_equal(res.fold_accuracies, ref)
    whole = pair_accuracy(angular_scores(a, b), same, convention="kfold-angular")
    assert whole.convention == "kfold-angular" and abs(whole.mean - res.mean) < 0.05


def test_conventions_tables_and_aliases():
    assert set(TAR_CONVENTIONS) == {"strict", "nearest", "interpolated", "nearest-reference"}
    assert set(PAIR_ACCURACY_CONVENTIONS) == {"kfold-grid", "kfold-exact", "kfold-youden", "best-threshold",
                                              "kfold-angular"}
    s, y = tied_data(1)
    assert (tar_at_far(s, y, fars=(0.1,), convention="insightface")
            == tar_at_far(s, y, fars=(0.1,), convention="nearest"))
    for alias in ("grid", "insightface"):
        np.testing.assert_array_equal(pair_accuracy(s, y, convention=alias).fold_accuracies,
                                      pair_accuracy(s, y, convention="kfold-grid").fold_accuracies)


# ------------------------------------------------------------------------------------------------------ the report


def test_verification_report_consistent_and_json_ready():
    s, y = tied_data(6, n=400)
    with pytest.warns(UserWarning):
        rep = verification_report(s, y, fars=(1e-4, 1e-2, 0.1), tar_convention="nearest",
                                  accuracy_convention="kfold-grid")
    assert rep.n_genuine == int(y.sum()) and rep.n_impostor == int((1 - y).sum())
    assert rep.eer == eer(s, y)
    assert rep.tar_at_far[0.1] == silent(tar_at_far, s, y, fars=(0.1,), convention="nearest")[0.1]
    assert isinstance(rep.accuracy, KFoldResult) and rep.accuracy.convention == "kfold-grid"
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["tar_at_far"]["0.0001"] is None and d["tar_convention"] == "nearest"
    assert silent(verification_report, s, y, n_folds=None).accuracy is None


# -------------------------------------------------------------------------------------------------- torch input


def test_torch_input_identical_to_numpy():
    s, y = tied_data(8)
    ts, ty = torch.tensor(s, dtype=torch.float64), torch.tensor(y)
    for a, b in zip(roc(ts, ty), roc(s, y)):
        np.testing.assert_array_equal(a, b)
    assert silent(tar_at_far, ts, ty, fars=FARS) == silent(tar_at_far, s, y, fars=FARS)
    assert eer(ts, ty) == eer(s, y)
    assert (pair_accuracy(ts, ty, convention="kfold-exact").fold_accuracies.tolist()
            == pair_accuracy(s, y, convention="kfold-exact").fold_accuracies.tolist())
    assert silent(verification_report, ts, ty).to_dict() == silent(verification_report, s, y).to_dict()


def test_torch_kernel_matches_numpy_kernel():
    s, y = tied_data(9, n=1000)
    a = roc_counts_torch(torch.tensor(s), y.astype(bool))
    b = roc_counts_numpy(s, y.astype(bool))
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_input_identical():
    s, y = tied_data(10, n=2000)
    cs, cy = torch.tensor(s, device="cuda"), torch.tensor(y, device="cuda")
    for a, b in zip(roc(cs, cy), roc(s, y)):
        np.testing.assert_array_equal(a, b)
    assert silent(tar_at_far, cs, cy, fars=FARS, convention="nearest") == silent(tar_at_far, s, y, fars=FARS, convention="nearest")


# ------------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("fn", [roc, eer, tar_at_far, operating_points, pair_accuracy,
                                verification_report])
@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
    ([0.1, 0.2, 0.3], [0, 1, 2], "1 \\(genuine\\) or 0"),
    ([0.1, 0.2, 0.3], [0, 0, 0], "no genuine"),
    ([0.1, 0.2, 0.3], [1, 1, 1], "no impostor"),
    ([0.1, np.nan, 0.3], [0, 1, 1], "NaN"),
    ([0.1, np.inf, 0.3], [0, 1, 1], "NaN or inf"),
    ([], [], "empty"),
    ([[0.1, 0.2]], [[0, 1]], "1-D"),
])
def test_bad_input_raises(fn, scores, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(np.asarray(scores, dtype=float), np.asarray(labels))


def test_bad_arguments_raise():
    s, y = tied_data(0, n=40)
    with pytest.raises(ValueError, match="unknown TAR convention"):
        tar_at_far(s, y, convention="median")
    with pytest.raises(ValueError, match="FAR targets"):
        tar_at_far(s, y, fars=(0.0,))
    with pytest.raises(ValueError, match="FAR targets"):
        tar_at_far(s, y, fars=(1.5,))
    with pytest.raises(ValueError, match="unknown accuracy convention"):
        pair_accuracy(s, y, convention="kfold-median")
    with pytest.raises(ValueError, match="n_folds"):
        pair_accuracy(s, y, n_folds=1, convention="kfold-exact")
    with pytest.raises(ValueError, match="cannot split"):
        pair_accuracy(s[:5], y[:5], n_folds=10, convention="kfold-exact")
    with pytest.raises(ValueError, match="same shape"):
        angular_scores(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        angular_scores(np.full((3, 4), np.nan), np.ones((3, 4)))


# ---------------------------------------------------------------------------------------------------- properties

scores_labels = st.integers(min_value=4, max_value=60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 12), min_size=n, max_size=n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(scores_labels)
def test_strict_tar_monotone_in_far(data):
    s, y = np.array(data[0], dtype=float), np.array(data[1])
    assume(0 < y.sum() < y.size)
    fars = np.linspace(0.01, 1, 40)
    tars = silent(tar_at_far, s, y, fars=fars)
    vals = [tars[f] for f in fars.tolist()]
    finite = [v for v in vals if not math.isnan(v)]
    assert finite == sorted(finite)
    # unresolvable targets come first (small FARs), never after a resolvable one
    assert all(math.isnan(v) for v in vals[: len(vals) - len(finite)])


@settings(max_examples=50, deadline=None)
@given(scores_labels)
def test_roc_rates_invariant_to_increasing_transform(data):
    s, y = np.array(data[0], dtype=float), np.array(data[1])
    assume(0 < y.sum() < y.size)
    t = np.exp(s / 3.0) * 7 - 2  # strictly increasing
    f1, t1, th1 = roc(s, y)
    f2, t2, th2 = roc(t, y)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(t1, t2)
    assert eer(s, y) == eer(t, y)
    for c in ("strict", "nearest", "interpolated"):
        assert silent(tar_at_far, s, y, fars=FARS, convention=c) == pytest.approx(
            silent(tar_at_far, t, y, fars=FARS, convention=c), nan_ok=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=200, max_size=200), st.lists(st.integers(0, 1), min_size=200,
                                                                         max_size=200))
def test_kfold_exact_invariant_to_increasing_transform(values, labels):
    # exact invariance needs every held-out score to occur among its training scores (a held-out score strictly
    # between two training scores is classified by the midpoint, which a non-affine transform moves)
    s, y = np.array(values, dtype=float), np.array(labels)
    assume(0 < y.sum() < y.size)
    for test in folds_of(200, 10):
        train = np.setdiff1d(np.arange(200), test)
        assume(np.isin(s[test], s[train]).all())
    t = np.exp(s) - 0.5
    assert (pair_accuracy(s, y, convention="kfold-exact").fold_accuracies.tolist()
            == pair_accuracy(t, y, convention="kfold-exact").fold_accuracies.tolist())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 120))
def test_kfold_affine_transform_invariance(seed, n):
    s, y = tied_data(seed, n=n)
    s = np.round(s * 10)  # integers: affine maps with integer coefficients keep midpoints exact
    assume(0 < y.sum() < y.size)
    a = pair_accuracy(s, y, convention="kfold-exact")
    b = pair_accuracy(3 * s + 11, y, convention="kfold-exact")
    assert a.fold_accuracies.tolist() == b.fold_accuracies.tolist()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(30, 150))
def test_exact_threshold_maximises_training_accuracy(seed, n):
    # the exact search maximises TRAINING-fold accuracy, so per fold it beats the grid's and Youden's training
    # accuracy (held-out accuracy carries no such guarantee)
    a, b, same = unit_pairs(seed, n, sep=1.5)
    cos = np.sum(a * b, 1)
    assume(0 < same.sum() < n)
    exact = pair_accuracy(cos, same, convention="kfold-exact")
    grid = pair_accuracy(cos, same, convention="kfold-grid")
    assert np.all(exact.train_accuracies >= grid.train_accuracies - 1e-12)
    try:
        youden = pair_accuracy(cos, same, convention="kfold-youden")
    except ValueError:  # a training split without one class
        return
    assert np.all(exact.train_accuracies >= youden.train_accuracies - 1e-12)


def test_bfloat16_tensors_are_widened_not_refused():
    import torch

    rng = np.random.default_rng(3)
    labels = np.repeat([1, 0], 500)
    scores = torch.tensor(np.where(labels == 1, rng.normal(0.6, 0.2, 1000), rng.normal(0.1, 0.2, 1000)),
                          dtype=torch.bfloat16)
    widened = scores.float().numpy()
    assert tar_at_far(scores, labels, fars=(1e-2,)) == tar_at_far(widened, labels, fars=(1e-2,))


# ------------------------------------------------------------------- reproducing an unsound published reading


@pytest.mark.parametrize("seed", range(3))
def test_nearest_reference_reads_an_unresolvable_far_as_sklearn_does(seed):
    # UNPG's K-FACE tables: TAR@FAR=1e-3 read at the nearest FPR on 500 impostor pairs (floor(0.5) = 0 allowed).
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(500, int), np.ones(300, int)]
    s = np.round(rng.normal(size=800) + 2.0 * y, 2)  # rounded: ties, so sklearn drops intermediate points
    fpr, tpr, thr = roc_curve(y, s)  # the reference procedure, defaults
    i = int(np.argmin(np.abs(fpr[::-1] - 1e-3)))
    with pytest.warns(UserWarning, match="reference procedure"):
        p = operating_points(s, y, fars=(1e-3, 1e-2), convention="nearest-reference")
    ref = p[1e-3]
    assert (ref.tar, ref.far, ref.threshold) == (tpr[::-1][i], fpr[::-1][i], thr[::-1][i])
    assert not ref.resolvable and "unsound" in ref.flag and ref.convention == "nearest-reference"
    # the default keeps NaN for the same target, flagged; resolvable targets are the plain "nearest" reading
    nan = silent(operating_points, s, y, fars=(1e-3, 1e-2), convention="nearest")
    assert math.isnan(nan[1e-3].tar) and not nan[1e-3].resolvable and nan[1e-3].flag
    assert (p[1e-2].tar, p[1e-2].far, p[1e-2].flag) == (nan[1e-2].tar, nan[1e-2].far, "")
    assert p[1e-2].resolvable


@pytest.mark.parametrize("seed", range(4))
def test_nearest_local_reading_equals_the_reversed_argmin_over_sklearns_curve(seed):
    # long collinear runs (impostor-only groups of one pair) and vertical runs, targets exactly on realised FPRs
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n_imp, n_gen = int(rng.integers(5, 400)), int(rng.integers(1, 60))
        s = np.r_[rng.permutation(n_imp) / 7.0, np.round(rng.uniform(-5, n_imp / 7.0 + 5, n_gen) * rng.choice([1, 4]))
                  / rng.choice([1, 4])]
        y = np.r_[np.zeros(n_imp, int), np.ones(n_gen, int)]
        fpr, tpr, _ = roc_curve(y, s)
        fars = [f for f in (rng.uniform(0, 1), 3 / n_imp, 1 / n_imp, 0.5, rng.choice(fpr[1:]) if fpr.size > 1 else 0.5)
                if 0 < f <= 1]
        got = silent(operating_points, s, y, fars=fars, convention="nearest-reference")
        for f in fars:
            i = int(np.argmin(np.abs(fpr[::-1] - f)))
            assert (got[f].tar, got[f].far) == (tpr[::-1][i], fpr[::-1][i])
