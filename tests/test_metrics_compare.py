"""Paired comparison: McNemar against scipy's exact binomial test, paired bootstrap against its definition."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binomtest

from fr_bench.metrics import uncertainty as unc
from fr_bench.metrics.compare import mcnemar, paired_accuracy_difference, paired_bootstrap_difference


@pytest.mark.parametrize("b,c,same", [(0, 0, 40), (1, 0, 5), (7, 2, 30), (15, 15, 0), (3, 40, 100), (120, 95, 8)])
def test_mcnemar_matches_scipy_binomtest(b, c, same):
    a_ok = np.r_[np.ones(b, bool), np.zeros(c, bool), np.ones(same, bool)]
    b_ok = np.r_[np.zeros(b, bool), np.ones(c, bool), np.ones(same, bool)]
    res = mcnemar(a_ok, b_ok)
    assert (res.b, res.c, res.statistic, res.method) == (b, c, min(b, c), "exact-binomial")
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert res.pvalue == pytest.approx(expected, rel=1e-10)


def test_mcnemar_rejects_bad_input():
    with pytest.raises(ValueError, match="one length"):
        mcnemar([1, 0], [1])
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([2, 0], [1, 0])


def _two_models(seed, n=4000, n_sub=40, gain=0.6):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_sub, n)
    b = np.where(rng.random(n) < 0.2, a, rng.integers(0, n_sub, n))
    y = a == b
    base = rng.standard_normal(n) + 0.3 * rng.standard_normal(n_sub)[a]
    s_b = base + 2.0 * y
    s_a = base + (2.0 + gain) * y + 0.2 * rng.standard_normal(n)
    return s_a, s_b, y, a, b


def _strict_tar_brute(s, y, weight, far):
    """Strict TAR@FAR of one weighted replicate by brute force: every distinct score as a threshold (accept iff
    score >= t), the lowest threshold whose weighted false accepts stay within floor(far * weighted impostors)."""
    budget = math.floor(Fraction(repr(far)) * int(weight[~y].sum()))
    best = 0.0
    for t in np.unique(s):
        acc = s >= t
        if weight[acc & ~y].sum() <= budget:
            best = max(best, weight[acc & y].sum() / weight[y].sum())
    return best


def test_paired_difference_is_the_difference_of_shared_replicates():
    s_a, s_b, y, a, b = _two_models(0, n=600, n_sub=12)
    s_a, s_b = np.round(s_a, 1), np.round(s_b, 1)  # ties
    res = paired_bootstrap_difference(s_a, s_b, y, a, b, far=0.05, n_boot=60, seed=3)
    w = unc.draw_unit_weights(12, 60, seed=3)  # the shared draw (units 0..11 are their own codes here)
    pair_w = [np.where(a == b, w[r][a], w[r][a] * w[r][b]) for r in range(60)]
    diff = np.array([_strict_tar_brute(s_a, y, pw, 0.05) - _strict_tar_brute(s_b, y, pw, 0.05) for pw in pair_w])
    lo, hi = np.quantile(diff, [(1 - 0.95) / 2, (1 + 0.95) / 2])
    assert (res.low, res.high) == pytest.approx((lo, hi), abs=1e-12)
    point_a = unc.bootstrap_tar_at_far(s_a, y, a, b, fars=(0.05,), n_boot=2)[0.05].point
    point_b = unc.bootstrap_tar_at_far(s_b, y, a, b, fars=(0.05,), n_boot=2)[0.05].point
    assert res.point == pytest.approx(point_a - point_b, abs=1e-15)
    assert res.low > 0  # model A is clearly better


def test_paired_difference_of_a_model_with_itself_is_zero_and_antisymmetric():
    s_a, s_b, y, a, b = _two_models(1)
    same = paired_bootstrap_difference(s_a, s_a, y, a, b, far=0.1, n_boot=50)
    assert (same.point, same.low, same.high) == (0.0, 0.0, 0.0)
    ab = paired_bootstrap_difference(s_a, s_b, y, a, b, far=0.1, n_boot=50, seed=2)
    ba = paired_bootstrap_difference(s_b, s_a, y, a, b, far=0.1, n_boot=50, seed=2)
    assert (ab.point, ab.low, ab.high) == pytest.approx((-ba.point, -ba.high, -ba.low), abs=1e-12)


def test_paired_accuracy_difference_by_unit():
    rng = np.random.default_rng(2)
    ok_a, ok_b = rng.random(600) < 0.9, rng.random(600) < 0.85
    units = np.repeat(np.arange(60), 10)
    res = paired_accuracy_difference(ok_a, ok_b, units, n_boot=300, seed=4, unit="subject")
    assert res.point == pytest.approx(ok_a.mean() - ok_b.mean())
    w = unc.draw_unit_weights(60, 300, seed=4).astype(float)
    per_a = np.bincount(units, weights=ok_a)
    per_b = np.bincount(units, weights=ok_b)
    reps = (w @ (per_a - per_b)) / (w @ np.bincount(units))
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))
    with pytest.raises(ValueError, match="one length"):
        paired_accuracy_difference(ok_a, ok_b[:5])
