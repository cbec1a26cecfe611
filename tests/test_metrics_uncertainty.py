"""Bootstrap intervals: replicates against a brute-force weighted ROC, point estimates against the metric
functions, and coverage of the 95% interval on simulated experiments with a known truth."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom, norm
from sklearn.metrics import roc_curve

from fr_bench.metrics import uncertainty as unc
from fr_bench.metrics.identification import open_set_search, tpir_at_fpir
from fr_bench.metrics.verification import eer, tar_at_far

FARS = (1e-3, 1e-2, 0.05, 0.1, 0.3)


def _clustered_pairs(seed, n=6000, n_sub=50):
    """Pairs between subjects with per-subject score offsets and many exact ties (scores rounded)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_sub, n)
    b = np.where(rng.random(n) < 0.15, a, rng.integers(0, n_sub, n))
    y = a == b
    s = np.round(rng.standard_normal(n) + 2.5 * y + 0.4 * rng.standard_normal(n_sub)[a], 2)
    return s, y, a, b


def _pair_weights(w, a, b):
    """The documented rule, written independently: w_a for a pair within one unit, w_a * w_b across units."""
    return np.where(a == b, w[a], w[a] * w[b])


def _brute_tar(s, y, weight, fars, convention):
    """TAR of one weighted replicate from scikit-learn's weighted ROC, read by hand."""
    keep = weight > 0
    drop = convention == "nearest"
    fpr, tpr, _ = roc_curve(y[keep], s[keep], sample_weight=weight[keep], drop_intermediate=drop)
    n_imp = int(weight[~y].sum())
    out = []
    for f in fars:
        k = math.floor(Fraction(repr(f)) * n_imp)
        if k < 1:
            out.append(math.nan)
        elif convention == "strict":
            out.append(tpr[np.rint(fpr * n_imp) <= k].max())
        elif convention == "interpolated":
            out.append(np.interp(f, fpr, tpr))
        else:
            out.append(tpr[::-1][np.argmin(np.abs(fpr[::-1] - f))])
    return np.array(out)


@pytest.mark.parametrize("convention", ["strict", "interpolated", "nearest"])
@pytest.mark.parametrize("tight", [False, True])
def test_replicates_match_weighted_roc(convention, tight, monkeypatch):
    if tight:  # anchored windows, one replicate per chunk, tiny margins and a short first slice: retries happen
        monkeypatch.setattr(unc, "_ANCHOR_MIN", 20)
        monkeypatch.setattr(unc, "_CHUNK_ROWS", 1)
        monkeypatch.setattr(unc, "_WINDOW_MARGIN", 1)
    s, y, a, b = _clustered_pairs(1)
    d, dev = unc._prepare(s, y, a, b)
    w = unc.draw_unit_weights(d.n_units, 12, seed=3)
    got = unc._tar_replicates(d, w, FARS, convention, dev, initial_length=40 if tight else None)
    ca, cb, _ = unc._unit_codes(a, b, s.size)
    for r in range(w.shape[0]):
        expected = _brute_tar(s, y, _pair_weights(w[r], ca, cb), FARS, convention)
        np.testing.assert_allclose(got[:, r], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("convention", ["strict", "interpolated", "nearest"])
def test_point_estimate_is_the_verification_metric(convention):
    s, y, a, b = _clustered_pairs(2)
    res = unc.bootstrap_tar_at_far(s, y, a, b, fars=FARS, convention=convention, n_boot=20)
    ref = tar_at_far(s, y, FARS, convention)
    for f in FARS:
        assert res[f].point == ref[f]
        assert res[f].low <= res[f].high and res[f].n_boot == 20 and res[f].unit == "subject"


def test_one_unit_per_pair_and_impostor_totals_both_paths(monkeypatch):
    s, y, a, b = _clustered_pairs(3, n=800)
    pairs = np.arange(s.size)
    d, dev = unc._prepare(s, y, pairs, None)
    w = unc.draw_unit_weights(d.n_units, 5, seed=1)
    got = unc._tar_replicates(d, w, (0.05, 0.2), "strict", dev)
    for r in range(5):
        np.testing.assert_allclose(got[:, r], _brute_tar(s, y, w[r].astype(float), (0.05, 0.2), "strict"))
    d2, _ = unc._prepare(s, y, a, b)
    w2 = unc.draw_unit_weights(d2.n_units, 7, seed=2)
    ca, cb, _ = unc._unit_codes(a, b, s.size)
    direct = np.array([_pair_weights(w2[r], ca, cb)[~y].sum() for r in range(7)])
    np.testing.assert_array_equal(d2.impostor_totals(w2), direct)
    monkeypatch.setattr(unc, "_DENSE_UNITS", 0)  # sparse path
    np.testing.assert_array_equal(d2.impostor_totals(w2), direct)


def test_seeded_and_unresolvable():
    s, y, a, b = _clustered_pairs(4, n=1500)
    one = unc.bootstrap_tar_at_far(s, y, a, b, fars=(0.1,), n_boot=50, seed=7)
    assert one == unc.bootstrap_tar_at_far(s, y, a, b, fars=(0.1,), n_boot=50, seed=7)
    assert one != unc.bootstrap_tar_at_far(s, y, a, b, fars=(0.1,), n_boot=50, seed=8)
    with pytest.warns(UserWarning, match="not resolvable"):
        res = unc.bootstrap_tar_at_far(s, y, a, b, fars=(1e-5, 0.1), n_boot=10)
    assert math.isnan(res[1e-5].point) and math.isnan(res[1e-5].low)
    with pytest.raises(ValueError, match="level"):
        unc.bootstrap_tar_at_far(s, y, a, b, level=95)


def test_draw_unit_weights_are_draws_with_replacement():
    w = unc.draw_unit_weights(30, 400, seed=0)
    assert w.shape == (400, 30) and (w.sum(axis=1) == 30).all() and w.min() >= 0
    assert abs(w.mean() - 1) < 0.02 and abs(w.var() - (1 - 1 / 30)) < 0.1  # multinomial moments


def _brute_eer(s, y, weight):
    keep = weight > 0
    fpr, tpr, _ = roc_curve(y[keep], s[keep], sample_weight=weight[keep], drop_intermediate=False)
    d = (1 - tpr) - fpr
    j = int(np.argmax(d <= 1e-15))
    if abs(d[j]) <= 1e-15:
        return fpr[j]
    t = d[j - 1] / (d[j - 1] - d[j])
    return fpr[j - 1] + t * (fpr[j] - fpr[j - 1])


def test_bootstrap_eer_point_and_replicates():
    s, y, a, b = _clustered_pairs(5, n=1500, n_sub=30)
    res = unc.bootstrap_eer(s, y, a, b, n_boot=40, seed=1)
    assert res.point == pytest.approx(eer(s, y), abs=1e-12)
    assert res.low <= res.point <= res.high
    d, _ = unc._prepare(s, y, a, b)
    w = unc.draw_unit_weights(d.n_units, 40, seed=1)
    ca, cb, _ = unc._unit_codes(a, b, s.size)
    reps = [_brute_eer(s, y, _pair_weights(w[r], ca, cb).astype(float)) for r in range(40)]
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert res.low == pytest.approx(lo, abs=1e-9) and res.high == pytest.approx(hi, abs=1e-9)


def test_bootstrap_rate_and_accuracy():
    succ, trials = np.array([3, 0, 5, 2]), np.array([4, 2, 5, 3])
    iv = unc.bootstrap_rate(succ, trials, n_boot=300, seed=0)
    assert iv.point == 10 / 14 and 0 <= iv.low <= iv.point <= iv.high <= 1
    w = unc.draw_unit_weights(4, 300, seed=0)
    lo, hi = np.quantile((w @ succ) / (w @ trials), [0.025, 0.975])
    assert (iv.low, iv.high) == pytest.approx((lo, hi))
    with pytest.raises(ValueError, match="successes <= trials"):
        unc.bootstrap_rate([3], [2])
    correct = np.r_[np.ones(50, bool), np.zeros(10, bool)]
    folds = np.tile(np.arange(10), 6)
    by_fold = unc.bootstrap_accuracy(correct, folds, unit="fold", n_boot=200)
    fold_acc = [correct[folds == f].mean() for f in range(10)]
    assert by_fold.point == 50 / 60 and min(fold_acc) <= by_fold.low <= by_fold.high <= max(fold_acc)
    with pytest.raises(ValueError, match="needs `folds`"):
        unc.bootstrap_accuracy(correct, unit="fold")
    values, s_u, t_u = unc.per_unit_counts([1, 0, 1, 1], ["b", "a", "b", "a"])
    assert values.tolist() == ["a", "b"] and s_u.tolist() == [1, 2] and t_u.tolist() == [2, 2]


def test_bootstrap_tpir_point_is_tpir_at_fpir():
    rng = np.random.default_rng(6)
    centres = rng.standard_normal((80, 8))
    gid = np.arange(40)
    pid = rng.integers(0, 80, 600)
    g = centres[gid] + 0.8 * rng.standard_normal((40, 8))
    p = centres[pid] + 0.8 * rng.standard_normal((600, 8))
    search = open_set_search(p, pid, g, gid)
    for rank in (1, 3):
        res = unc.bootstrap_tpir_at_fpir(search, pid, fpirs=(0.01, 0.1), rank=rank, n_boot=50)
        ref = tpir_at_fpir(p, pid, g, gid, fpirs=(0.01, 0.1), rank=rank)
        for f in (0.01, 0.1):
            assert res[f].point == ref[f].tpir and res[f].low <= res[f].high


def _tolerance(n_exp, level=0.95, alpha=1e-3):
    """Range of hits compatible with the nominal coverage (two-sided binomial, probability alpha to fail)."""
    return binom.ppf(alpha / 2, n_exp, level) / n_exp, binom.isf(alpha / 2, n_exp, level) / n_exp


def test_coverage_tar_at_far_on_gaussian_scores():
    rng = np.random.default_rng(0)
    mu, far, n_exp = 2.0, 0.05, 300
    truth = norm.sf(norm.isf(far) - mu)  # TAR of N(mu, 1) genuine vs N(0, 1) impostor scores at FAR 0.05
    y = np.r_[np.ones(300, bool), np.zeros(2000, bool)]
    hits = 0
    for e in range(n_exp):
        s = np.r_[rng.normal(mu, 1, 300), rng.normal(0, 1, 2000)]
        iv = unc.bootstrap_tar_at_far(s, y, np.arange(s.size), fars=(far,), n_boot=200, seed=e, unit="pair")[far]
        hits += iv.low <= truth <= iv.high
    low, high = _tolerance(n_exp)
    assert low <= hits / n_exp <= high, (hits / n_exp, low, high)


def test_coverage_rate_on_clustered_bernoulli():
    """Subjects with their own success probability: the by-subject bootstrap must cover the population rate."""
    rng = np.random.default_rng(1)
    n_exp, n_sub = 300, 150
    hits = 0
    for e in range(n_exp):
        p_sub = rng.beta(4, 1, n_sub)  # population mean 0.8
        trials = rng.integers(1, 8, n_sub)
        succ = rng.binomial(trials, p_sub)
        iv = unc.bootstrap_rate(succ, trials, n_boot=300, seed=e)
        hits += iv.low <= 0.8 <= iv.high
    low, high = _tolerance(n_exp)
    assert low <= hits / n_exp <= high, (hits / n_exp, low, high)


def test_torch_scores_give_the_numpy_intervals():
    torch = pytest.importorskip("torch")
    s, y, a, b = _clustered_pairs(8, n=2000)
    ref = unc.bootstrap_tar_at_far(s, y, a, b, fars=(0.01, 0.1), n_boot=30)
    assert unc.bootstrap_tar_at_far(torch.from_numpy(s), torch.from_numpy(y), a, b, fars=(0.01, 0.1),
                                    n_boot=30) == ref
