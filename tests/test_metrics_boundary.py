"""The metric boundary: the shared helpers against independent computations, the public replicate API against the
bootstrap it feeds, keyword-only options and the refusal of non-binary labels (swapped arguments)."""

from __future__ import annotations

import inspect
import math
from decimal import Decimal

import numpy as np
import pytest
from sklearn.model_selection import KFold

import fr_bench.metrics as M
from fr_bench.metrics._common import allowed_count, contiguous_folds, dense_codes, json_value


def test_allowed_count_scalar_and_array_are_exact_decimal():
    for rate, n in [(0.29, 100), (1e-3, 300000), (1e-3, 999), (1e-6, 3530 * 10**6), (0.1, 30), (1.0, 7)]:
        expected = int((Decimal(repr(rate)) * n).to_integral_value(rounding="ROUND_FLOOR"))
        assert allowed_count(rate, n) == expected
        assert allowed_count(rate, np.array([n, n + 1]))[0] == expected
    with pytest.raises(ValueError, match="rate"):
        allowed_count(1.5, 10)


def test_dense_codes_shared_vocabulary_both_paths():
    a, b = np.array([7, 3, 7, 11]), np.array([3, 20, 5, 3])
    values, (ca, cb) = dense_codes(a, b)
    assert values.tolist() == sorted(set(a) | set(b))
    assert values[ca].tolist() == a.tolist() and values[cb].tolist() == b.tolist()
    sv, (sa, sb) = dense_codes(a.astype(str), b.astype(str))  # the sorting path
    assert sv[sa].tolist() == a.astype(str).tolist() and sv[sb].tolist() == b.astype(str).tolist()
    nv, (na,) = dense_codes(np.array([-2, 5, -2]))  # negative ids: the sorting path
    assert nv.tolist() == [-2, 5] and na.tolist() == [0, 1, 0]


@pytest.mark.parametrize("n,k", [(10, 10), (23, 10), (6000, 10), (7, 3)])
def test_contiguous_folds_are_sklearn_kfold(n, k):
    bounds = contiguous_folds(n, k)
    ref = [test for _, test in KFold(n_splits=k, shuffle=False).split(np.zeros(n))]
    assert [list(range(bounds[f], bounds[f + 1])) for f in range(k)] == [r.tolist() for r in ref]


def test_json_value_handles_numpy_nan_and_float_keys():
    out = json_value({1e-6: np.float32(0.5), "x": np.array([1.0, np.nan, np.inf]), "b": np.bool_(True),
                      "i": np.int64(3)})
    assert out == {"1e-06": 0.5, "x": [1.0, None, None], "b": True, "i": 3}


def _public_functions():
    for name in M.__all__:
        obj = getattr(M, name)
        if inspect.isfunction(obj):
            yield name, obj


@pytest.mark.parametrize("name,fn", list(_public_functions()))
def test_every_option_is_keyword_only(name, fn):
    # arrays (and the records that stand for them) are positional; every option comes after `*`
    data = {"scores", "labels", "scores_a", "scores_b", "unit_a", "unit_b", "weights", "probe", "probe_ids",
            "gallery", "gallery_ids", "galleries", "distractors", "genuine", "impostor", "emb_a", "emb_b",
            "far", "tar", "thresholds", "successes", "trials", "success", "units", "correct", "folds",
            "correct_a", "correct_b", "search", "point", "replicates", "rate", "n", "n_units", "n_boot",
            "pair_quality", "q_a", "q_b", "labels_true", "labels_pred"}
    positional = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert set(positional) <= data, f"{name}: options {sorted(set(positional) - data)} should be keyword-only"


def test_one_default_per_concept():
    s = np.r_[np.linspace(0.3, 1, 50), np.linspace(-0.5, 0.6, 50)]
    y = np.r_[np.ones(50), np.zeros(50)]
    default = M.pair_accuracy(s, y)
    assert default.convention == M.DEFAULT_ACCURACY == "kfold-grid"
    assert M.verification_report(s, y, fars=(0.1,)).accuracy_convention == M.DEFAULT_ACCURACY
    assert not hasattr(M, "kfold_accuracy")  # a second name with a second default is gone
    assert inspect.signature(M.tar_at_far).parameters["convention"].default == "strict"
    assert inspect.signature(M.operating_points).parameters["fars"].default == M.DEFAULT_FARS
    assert set(M.TAR_CONVENTIONS) == {"strict", "nearest", "interpolated", "nearest-reference"}


SWAPPED = [
    ("tar_at_far", lambda s, y: M.tar_at_far(y, s)),
    ("pair_accuracy", lambda s, y: M.pair_accuracy(y, s)),
    ("roc", lambda s, y: M.roc(y, s)),
    ("bootstrap_accuracy", lambda s, y: M.bootstrap_accuracy(s)),
    ("per_unit_counts", lambda s, y: M.per_unit_counts(s, np.arange(s.size))),
    ("mcnemar", lambda s, y: M.mcnemar(s, y)),
    ("paired_accuracy_difference", lambda s, y: M.paired_accuracy_difference(y, s)),
]


@pytest.mark.parametrize("name,call", SWAPPED, ids=[n for n, _ in SWAPPED])
def test_non_binary_labels_or_outcomes_are_a_clear_error(name, call):
    rng = np.random.default_rng(0)
    s = rng.normal(size=40)
    y = np.r_[np.ones(20), np.zeros(20)]
    with pytest.raises(ValueError, match="swapped|0/1|genuine"):
        call(s, y)


def test_public_replicates_are_the_bootstrap_replicates():
    rng = np.random.default_rng(1)
    n, n_sub = 3000, 40
    a = rng.integers(0, n_sub, n)
    b = np.where(rng.random(n) < 0.2, a, rng.integers(0, n_sub, n))
    y = a == b
    s = np.round(rng.normal(size=n) + 2 * y, 2)
    w = M.draw_unit_weights(n_sub, 30, seed=5)
    fars = (0.01, 0.1)
    for conv in ("strict", "nearest", "interpolated"):
        reps = M.tar_replicates(s, y, a, b, w, fars=fars, convention=conv)
        boot = M.bootstrap_tar_at_far(s, y, a, b, fars=fars, convention=conv, n_boot=30, seed=5)
        ones = M.tar_replicates(s, y, a, b, np.ones((1, n_sub), np.int64), fars=fars, convention=conv)[:, 0]
        point = M.tar_at_far(s, y, fars=fars, convention=conv)
        for i, f in enumerate(fars):
            lo, hi = np.quantile(reps[i], [(1 - 0.95) / 2, (1 + 0.95) / 2])
            assert (boot[f].low, boot[f].high) == (lo, hi)
            assert ones[i] == point[f]
    with pytest.raises(ValueError, match="unit columns"):
        M.tar_replicates(s, y, a, b, w[:, :5], fars=fars)
    succ, tri = rng.integers(0, 5, n_sub), np.full(n_sub, 5)
    rates = M.rate_replicates(succ, tri, w)
    np.testing.assert_allclose(rates, [(w[r] * succ).sum() / (w[r] * tri).sum() for r in range(30)], rtol=1e-15)
    iv = M.percentile_interval(0.5, np.r_[rates, np.nan], level=0.9, unit="subject")
    assert (iv.low, iv.high) == tuple(np.quantile(rates, [(1 - 0.9) / 2, (1 + 0.9) / 2])) and iv.n_boot == 31


def test_tpir_replicates_are_the_tpir_bootstrap():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((60, 8))
    gid, pid = np.arange(30), rng.integers(0, 60, 500)
    g = centres[gid] + 0.8 * rng.standard_normal((30, 8))
    p = centres[pid] + 0.8 * rng.standard_normal((500, 8))
    search = M.open_set_search(p, pid, g, gid)
    w = M.draw_unit_weights(np.unique(pid).size, 40, seed=3)
    reps = M.tpir_replicates(search, pid, w, fpirs=(0.1,))
    boot = M.bootstrap_tpir_at_fpir(search, pid, fpirs=(0.1,), n_boot=40, seed=3)[0.1]
    assert (boot.low, boot.high) == tuple(np.quantile(reps[0], [(1 - 0.95) / 2, (1 + 0.95) / 2]))
    assert boot.point == M.tpir_at_fpir(p, pid, g, gid, fpirs=(0.1,))[0.1].tar
    assert not math.isnan(boot.low)
