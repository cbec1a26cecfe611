"""distribution_overlap against hand-worked values, direct formulas and brute force."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fr_bench.metrics import distribution_overlap


def test_dprime_hand_worked():
    # genuine {1, 3}: mean 2, population var 1; impostor {-1, -1, -1, -1}: mean -1, var 0
    d = distribution_overlap([1.0, 3.0], [-1.0, -1.0, -1.0, -1.0])
    assert d.dprime == pytest.approx(3 / math.sqrt(0.5))
    assert (d.genuine_mean, d.impostor_mean, d.genuine_std, d.impostor_std) == (2.0, -1.0, 1.0, 0.0)
    assert (d.n_genuine, d.n_impostor) == (2, 4)


def test_identical_samples_overlap_one():
    x = np.random.default_rng(0).normal(size=500)
    d = distribution_overlap(x, x.copy(), bins=30)
    assert d.overlap == pytest.approx(1.0)
    assert d.bhattacharyya_coefficient == pytest.approx(1.0)
    assert d.bhattacharyya_distance == pytest.approx(0.0, abs=1e-12)
    assert d.dprime == 0.0


def test_disjoint_samples_overlap_zero():
    d = distribution_overlap([0.8, 0.9, 1.0], [0.0, 0.1, 0.2], bins=10)
    assert d.overlap == 0.0 and d.bhattacharyya_coefficient == 0.0
    assert d.bhattacharyya_distance == math.inf
    assert d.impostor_above_min_genuine == 0.0 and d.genuine_below_max_impostor == 0.0
    json.dumps(d.to_dict(), allow_nan=False)  # inf -> None


def test_histograms_and_coefficients_against_direct_formula():
    rng = np.random.default_rng(1)
    g, i = rng.normal(0.6, 0.1, 300), rng.normal(0.1, 0.15, 2000)
    d = distribution_overlap(g, i, bins=25)
    edges = np.linspace(min(g.min(), i.min()), max(g.max(), i.max()), 26)
    np.testing.assert_allclose(d.bin_edges, edges)
    gc = np.array([np.sum((g >= a) & ((g < b) if k < 24 else (g <= b))) for k, (a, b) in
                   enumerate(zip(edges[:-1], edges[1:]))])
    ic = np.array([np.sum((i >= a) & ((i < b) if k < 24 else (i <= b))) for k, (a, b) in
                   enumerate(zip(edges[:-1], edges[1:]))])
    np.testing.assert_array_equal(d.genuine_counts, gc)
    np.testing.assert_array_equal(d.impostor_counts, ic)
    assert d.genuine_counts.dtype.kind == "i" and gc.sum() == 300 and ic.sum() == 2000
    pg, pi = gc / 300, ic / 2000
    assert d.overlap == pytest.approx(sum(min(a, b) for a, b in zip(pg, pi)))
    assert d.bhattacharyya_coefficient == pytest.approx(sum(math.sqrt(a * b) for a, b in zip(pg, pi)))
    assert d.bhattacharyya_distance == pytest.approx(-math.log(d.bhattacharyya_coefficient))
    pooled = math.sqrt((np.var(g) + np.var(i)) / 2)
    assert d.dprime == pytest.approx(abs(g.mean() - i.mean()) / pooled)


def test_tail_fractions_brute_force_with_ties():
    g = np.array([0.3, 0.5, 0.5, 0.9, 0.2])
    i = np.array([0.2, 0.1, 0.25, 0.5, 0.0, 0.2])
    d = distribution_overlap(g, i, bins=4)
    assert d.impostor_above_min_genuine == sum(x > min(g) for x in i) / len(i)  # 0.25, 0.5 (0.2 is not >)
    assert d.genuine_below_max_impostor == sum(x < max(i) for x in g) / len(g)  # 0.3, 0.2 (0.5 is not <)
    assert d.impostor_above_min_genuine == 2 / 6 and d.genuine_below_max_impostor == 2 / 5


def test_bin_edges_and_range_arguments():
    g, i = np.array([0.1, 0.5, 0.95]), np.array([0.05, 0.5, 2.0])
    d = distribution_overlap(g, i, bins=[0.0, 0.5, 1.0])  # 2.0 lies outside the edges: not counted
    np.testing.assert_array_equal(d.genuine_counts, [1, 2])
    np.testing.assert_array_equal(d.impostor_counts, [1, 1])
    d2 = distribution_overlap(g, i, bins=2, range=(0.0, 1.0))
    np.testing.assert_array_equal(d2.bin_edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(d2.impostor_counts, [1, 1])


def test_torch_input_and_constant_scores():
    rng = np.random.default_rng(2)
    g, i = rng.normal(1, 1, 50), rng.normal(0, 1, 70)
    a = distribution_overlap(torch.tensor(g), torch.tensor(i)).to_dict()
    assert a == distribution_overlap(g, i).to_dict()
    c = distribution_overlap([0.5, 0.5], [0.5])  # all equal: one shared range around the value
    assert c.overlap == 1.0 and math.isnan(c.dprime)


@pytest.mark.parametrize("g,i,bins,match", [
    ([], [0.1], 10, "genuine scores are empty"),
    ([0.1], [], 10, "impostor scores are empty"),
    ([0.1, np.nan], [0.1], 10, "NaN"),
    ([0.1], [np.inf], 10, "NaN or inf"),
    ([[0.1]], [0.1], 10, "1-D"),
    ([0.1], [0.2], 0, "bins must be >= 1"),
    ([0.1], [0.2], [0.5, 0.4], "increasing"),
    ([0.1], [0.9], [0.0, 0.5], "no genuine or no impostor"),
])
def test_bad_input(g, i, bins, match):
    with pytest.raises(ValueError, match=match):
        distribution_overlap(np.asarray(g, dtype=float), np.asarray(i, dtype=float), bins=bins)


@pytest.mark.parametrize("seed", range(3))
def test_edges_array_counts_exactly_as_fixed_bins_including_values_on_edges(seed):
    rng = np.random.default_rng(seed)
    edges = np.histogram_bin_edges([0.0], bins=50, range=(-0.3, 0.9))
    g = np.r_[rng.uniform(-0.3, 0.9, 5000), edges, edges[::7], np.nextafter(edges, -1), np.nextafter(edges, 2)]
    i = np.r_[rng.normal(0.1, 0.2, 20000).clip(-0.3, 0.9), edges[::3]]
    g32, i32 = g.astype(np.float32), i.astype(np.float32)  # float32 scores, as the protocols pass them
    for gs, im in ((g, i), (g32, i32)):
        d = distribution_overlap(gs, im, bins=50, range=(-0.3, 0.9))
        np.testing.assert_array_equal(d.bin_edges, edges)
        ref_g = np.array([np.sum((gs >= a) & ((gs < b) | ((b == edges[-1]) & (gs == b))))  # [a, b), last closed
                          for a, b in zip(edges[:-1], edges[1:])])
        ref_i = np.array([np.sum((im >= a) & ((im < b) | ((b == edges[-1]) & (im == b))))
                          for a, b in zip(edges[:-1], edges[1:])])
        np.testing.assert_array_equal(d.genuine_counts, ref_g)
        np.testing.assert_array_equal(d.impostor_counts, ref_i)
        if gs.dtype == np.float64:  # numpy's fixed-bin path compares float32 data with the range in float32
            np.testing.assert_array_equal(d.genuine_counts, np.histogram(gs, bins=50, range=(-0.3, 0.9))[0])
            np.testing.assert_array_equal(d.impostor_counts, np.histogram(im, bins=50, range=(-0.3, 0.9))[0])
