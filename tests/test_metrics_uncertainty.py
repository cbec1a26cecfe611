"""Bootstrap intervals: replicates against a brute-force weighted ROC, point estimates against the metric
functions, and coverage of the 95% interval on simulated experiments with a known truth."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom, norm
from sklearn.metrics import roc_curve

from fr_bench.metrics import _nearest as near
from fr_bench.metrics import _pairs as pairs_mod
from fr_bench.metrics import _replicates as rep
from fr_bench.metrics import uncertainty as unc
from fr_bench.metrics import open_set_search, tpir_at_fpir
from fr_bench.metrics import eer, tar_at_far

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
        monkeypatch.setattr(rep, "ANCHOR_MIN", 20)
        monkeypatch.setattr(rep, "CHUNK_ROWS", 1)
        monkeypatch.setattr(rep, "WINDOW_MARGIN", 1)
        monkeypatch.setattr(near, "WINDOW_MARGIN", 1)
        monkeypatch.setattr(near, "CHUNK_ROWS", 1)
    s, y, a, b = _clustered_pairs(1)
    d, dev = pairs_mod.prepare(s, y, a, b)
    w = unc.draw_unit_weights(d.n_units, 12, seed=3)
    got = rep.tar_replicates(d, w, FARS, convention, dev, initial_length=40 if tight else None)
    ca, cb, _ = pairs_mod.unit_codes(a, b, s.size)
    for r in range(w.shape[0]):
        expected = _brute_tar(s, y, _pair_weights(w[r], ca, cb), FARS, convention)
        np.testing.assert_allclose(got[:, r], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("convention", ["strict", "interpolated", "nearest"])
def test_point_estimate_is_the_verification_metric(convention):
    s, y, a, b = _clustered_pairs(2)
    res = unc.bootstrap_tar_at_far(s, y, a, b, fars=FARS, convention=convention, n_boot=20)
    ref = tar_at_far(s, y, fars=FARS, convention=convention)
    for f in FARS:
        assert res[f].point == ref[f]
        assert res[f].low <= res[f].high and res[f].n_boot == 20 and res[f].unit == "subject"


def test_one_unit_per_pair_and_impostor_totals_both_paths(monkeypatch):
    s, y, a, b = _clustered_pairs(3, n=800)
    pairs = np.arange(s.size)
    d, dev = pairs_mod.prepare(s, y, pairs, None)
    w = unc.draw_unit_weights(d.n_units, 5, seed=1)
    got = rep.tar_replicates(d, w, (0.05, 0.2), "strict", dev)
    for r in range(5):
        np.testing.assert_allclose(got[:, r], _brute_tar(s, y, w[r].astype(float), (0.05, 0.2), "strict"))
    d2, _ = pairs_mod.prepare(s, y, a, b)
    w2 = unc.draw_unit_weights(d2.n_units, 7, seed=2)
    ca, cb, _ = pairs_mod.unit_codes(a, b, s.size)
    direct = np.array([_pair_weights(w2[r], ca, cb)[~y].sum() for r in range(7)])
    np.testing.assert_array_equal(d2.impostor_totals(w2), direct)
    monkeypatch.setattr(pairs_mod, "DENSE_UNITS", 0)  # sparse path
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
    d, _ = pairs_mod.prepare(s, y, a, b)
    w = unc.draw_unit_weights(d.n_units, 40, seed=1)
    ca, cb, _ = pairs_mod.unit_codes(a, b, s.size)
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
            assert res[f].point == ref[f].tar and res[f].low <= res[f].high


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


def _top_impostors_of_one_unit_pair(seed):
    """3,000 impostor pairs of units (0, 1) above 3,000 of units (2, 3), genuine pairs within each unit: a
    replicate that drops unit 0 or 1 gives weight 0 to every impostor at the top of the sorted list."""
    rng = np.random.default_rng(seed)
    n = 3000
    a = np.r_[np.zeros(n, int), np.full(n, 2), np.arange(4).repeat(500)]
    b = np.r_[np.ones(n, int), np.full(n, 3), np.arange(4).repeat(500)]
    s = np.r_[rng.uniform(0.5, 0.6, n), rng.uniform(0.0, 0.4, n), rng.uniform(0.3, 1.0, 2000)]
    return s, a == b, a, b


def test_unresolvable_target_beside_zero_weight_top_impostors_gives_nan_not_an_error():
    # FAR 1e-5 with 6,000 impostors allows no false accept in any replicate (k = 0): the replicate's window must
    # still grow past the zero-weight top impostors (it stayed 2 x margin wide and raised RuntimeError)
    s, y, a, b = _top_impostors_of_one_unit_pair(0)
    w = unc.draw_unit_weights(4, 20, seed=0)
    assert ((w[:, 0] == 0) | (w[:, 1] == 0)).any()
    with pytest.warns(UserWarning, match="not resolvable"):
        res = unc.bootstrap_tar_at_far(s, y, a, b, fars=(1e-5, 0.1), n_boot=20, seed=0)
    assert math.isnan(res[1e-5].point) and math.isnan(res[1e-5].low) and math.isnan(res[1e-5].high)
    weights = [_pair_weights(w[r], a, b) for r in range(20)]
    reps = [_brute_tar(s, y, pw, (0.1,), "strict")[0] for pw in weights if pw[y].sum() and pw[~y].sum()]
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert (res[0.1].low, res[0.1].high) == pytest.approx((lo, hi), abs=1e-12)


@pytest.mark.parametrize("convention", ["strict", "interpolated"])
def test_window_grows_when_the_threshold_sits_at_the_anchor(convention, monkeypatch):
    # anchored windows with a 1-position margin: a replicate whose count still to go past the anchor is 0 (k equal
    # to the weighted count before the anchor) must widen its window on retry, not loop until RuntimeError
    monkeypatch.setattr(rep, "ANCHOR_MIN", 20)
    monkeypatch.setattr(rep, "CHUNK_ROWS", 1)
    monkeypatch.setattr(rep, "WINDOW_MARGIN", 1)
    s, y, a, b = _top_impostors_of_one_unit_pair(1)
    fars = (0.01, 0.3, 0.5)
    d, dev = pairs_mod.prepare(s, y, a, b)
    w = unc.draw_unit_weights(4, 30, seed=1)
    got = rep.tar_replicates(d, w, fars, convention, dev, initial_length=10)
    for r in range(w.shape[0]):
        pw = _pair_weights(w[r], a, b)
        if pw[y].sum() and pw[~y].sum():
            np.testing.assert_allclose(got[:, r], _brute_tar(s, y, pw, fars, convention), rtol=0, atol=1e-12)


@pytest.mark.parametrize("initial_length", [1, 2, 3, 10])
def test_nearest_replicates_on_a_short_slice_of_coarse_scores(initial_length):
    # integer scores: a few big tie groups, so a replicate's curve on the first slice can have fewer than three
    # points; its points near the slice end are provisional and must trigger a longer slice, not be read
    rng = np.random.default_rng(4)
    a = rng.integers(0, 8, 300)
    b = np.where(rng.random(300) < 0.3, a, rng.integers(0, 8, 300))
    y = a == b
    s = np.round(rng.standard_normal(300) + 1.5 * y)
    fars = (0.05, 0.1, 0.3, 0.5, 0.9)
    d, dev = pairs_mod.prepare(s, y, a, b)
    w = unc.draw_unit_weights(8, 10, seed=4)
    got = rep.tar_replicates(d, w, fars, "nearest", dev, initial_length=initial_length)
    for r in range(w.shape[0]):
        pw = _pair_weights(w[r], a, b)
        if pw[y].sum() and pw[~y].sum():
            np.testing.assert_allclose(got[:, r], _brute_tar(s, y, pw, fars, "nearest"), rtol=0, atol=1e-12)


def test_weighted_count_stays_exact_beyond_float32_integers(monkeypatch):
    # the dense unit x unit product ran in float32, exact only while every partial sum stays below 2**24; a
    # weighted count past that (a heavily drawn unit with many pairs) must still be the exact integer
    a = np.array([0, 0, 0, 1, 2, 3, 1, 2])
    b = np.array([1, 1, 2, 2, 3, 0, 1, 2])  # the last two: same-unit pairs (linear weight)
    s = np.linspace(0.0, 1.0, a.size)
    y = a == b
    d, _ = pairs_mod.prepare(s, y, a, b)
    w = np.array([[2 ** 24 + 1, 3, 1, 2], [1, 1, 1, 1], [0, 2 ** 25 + 3, 5, 0]], dtype=np.int64)
    direct = [int(sum(int(w[r, i]) * (1 if i == j else int(w[r, j])) for i, j in zip(a[~y], b[~y])))
              for r in range(w.shape[0])]
    np.testing.assert_array_equal(d.impostor_totals(w), direct)  # dense path
    monkeypatch.setattr(pairs_mod, "DENSE_UNITS", 0)  # sparse path
    np.testing.assert_array_equal(d.impostor_totals(w), direct)


@pytest.mark.parametrize("tight", [False, True])
def test_vectorised_nearest_equals_the_one_replicate_loop(tight, monkeypatch):
    # many ties (scores rounded), zero-weight units, targets deep and shallow; tight windows force the retries and
    # the fallback to the loop for some replicates
    s, y, a, b = _clustered_pairs(11, n=5000, n_sub=40)
    d, dev = pairs_mod.prepare(s, y, a, b)
    w = unc.draw_unit_weights(d.n_units, 40, seed=2)
    fars = (1e-3, 0.01, 0.05, 0.2, 0.5)
    if tight:
        monkeypatch.setattr(near, "WINDOW_MARGIN", 1)
        monkeypatch.setattr(near, "CHUNK_ROWS", 3)
    vec = rep.tar_replicates(d, w, fars, "nearest", dev)
    monkeypatch.setattr(near, "VECTORISED_NEAREST", False)
    d2, _ = pairs_mod.prepare(s, y, a, b)
    loop = rep.tar_replicates(d2, w, fars, "nearest", dev)
    np.testing.assert_array_equal(vec, loop)
    sl = d.top(int(1.25 * 0.5 * d.n_imp) + 4096)
    _, proven = near.nearest_windowed(d, sl, near.merged_slice(d, sl), w, d.impostor_totals(w), list(fars))
    assert proven.mean() > (0.3 if tight else 0.9)  # the windows do the work
