"""UNPG against the released code's rule written out by hand: every different-label pair once, quartiles at
sorted[int(0.25 n)] / sorted[int(0.75 n)], ties, a single-identity batch, values and finite-difference gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_heads_reference as ref
from fr_bench.train import build_head
from fr_bench.train.heads.unpg import box_and_whisker, negative_pair_cosines


def _kept_np(x, y, w=1.5):
    e = ref.normalize_rows(x)
    sims = [e[i] @ e[j] for i, j in itertools.combinations(range(len(y)), 2) if y[i] != y[j]]
    s = sorted(sims)
    n = len(s)
    if n == 0:
        return np.zeros(0)
    q1, q3 = s[int(0.25 * n)], s[int(0.75 * n)]
    lo, hi = q1 - w * (q3 - q1), q3 + w * (q3 - q1)
    return np.array([v for v in s if lo <= v <= hi])


def test_negative_pairs_are_every_different_label_pair_once():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    y = np.array([0, 0, 1, 2, 1, 0, 3])
    got = negative_pair_cosines(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    e = ref.normalize_rows(x)
    expected = [e[i] @ e[j] for i in range(7) for j in range(i + 1, 7) if y[i] != y[j]]
    assert len(got) == len(expected) == 21 - 4  # 21 pairs, 4 of them share a label (0-0 x3, 1-1 x1)
    np.testing.assert_allclose(np.sort(got), np.sort(expected), rtol=1e-12)


def test_box_and_whisker_hand_worked_cases_with_ties():
    # n = 8 -> Q1 = sorted[2], Q3 = sorted[6]
    v = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9], dtype=torch.float64)
    assert box_and_whisker(v, 1.5).tolist() == sorted(v.tolist())  # Q1 0.1, Q3 0.5, keep [-0.5, 1.1]: all
    v = torch.tensor([0.2] * 6 + [0.3, -0.4], dtype=torch.float64)
    assert box_and_whisker(v, 1.5).tolist() == [0.2] * 6  # tied quartiles: IQR 0, the ties are kept (inclusive)
    v = torch.tensor([-0.9, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.95], dtype=torch.float64)
    # Q1 = 0.1, Q3 = 0.5, IQR 0.4, w 1.5 -> [-0.5, 1.1]: -0.9 dropped; w 0.5 -> [-0.1, 0.7]: 0.95 dropped too
    assert box_and_whisker(v, 1.5).tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.95]
    assert box_and_whisker(v, 0.5).tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert box_and_whisker(torch.tensor([0.7]), 1.5).tolist() == pytest.approx([0.7])
    assert box_and_whisker(torch.zeros(0), 1.5).numel() == 0


def _data():
    """Near-orthogonal embeddings, plus rows 5 and 6 that nearly repeat rows 0 and 2 under other labels: their
    negative pairs (cos ~ 0.95) fall outside the whiskers."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 5))
    x = np.eye(5)[[0, 1, 2, 3, 4, 0, 2, 3]] + 0.1 * rng.normal(size=(8, 5))
    x[7] = rng.normal(size=5)
    y = np.array([0, 1, 2, 3, 0, 1, 3, 2])
    return 2.0 * x, w, y


@pytest.mark.parametrize("base", ["cosface", "arcface"])
def test_unpg_loss_matches_formula_values_and_gradients(base):
    x, w, y = _data()
    s = 64.0
    target = {"cosface": lambda c: c - 0.35, "arcface": lambda c: ref.arcface_target(c, 0.5)}[base]

    def logits_np(xx, ww):
        z = s * ref.with_target(ref.cosines(xx, ww), y, lambda i, c: target(c))
        kept = _kept_np(xx, y)
        return np.concatenate([z, np.repeat(s * kept[None, :], len(y), axis=0)], axis=1), kept

    head = build_head("unpg", base=base, embedding_size=5, num_classes=4).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = torch.from_numpy(y)
    loss = head(xt, yt)
    loss.backward()
    z_np, kept = logits_np(x, w)
    assert 12 < len(kept) < 24 and kept.max() < 0.9  # the near-repeats (cos ~ 0.95) are filtered out
    np.testing.assert_allclose(head.logits(xt, yt).detach().numpy(), z_np, rtol=1e-12, atol=1e-9)
    assert loss.item() == pytest.approx(ref.cross_entropy(z_np, y), rel=1e-12)
    assert loss.item() == pytest.approx(F.cross_entropy(head.logits(xt, yt), yt).item(), rel=1e-12)

    def f(xx, ww):
        z, _ = logits_np(xx, ww)
        return ref.cross_entropy(z, y)

    np.testing.assert_allclose(xt.grad.numpy(), ref.numeric_grad(lambda a: f(a, w), x.copy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head.weight.grad.numpy(), ref.numeric_grad(lambda a: f(x, a), w.copy()),
                               rtol=1e-5, atol=1e-6)


def test_unpg_magface_adds_the_regulariser():
    x, w, y = _data()
    x = ref.normalize_rows(x) * np.linspace(20, 90, 8)[:, None]
    head = build_head("unpg_magface", embedding_size=5, num_classes=4).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    a = np.linalg.norm(x, axis=1)
    expected = F.cross_entropy(head.logits(xt, yt), yt).item() + 35.0 * np.mean(a / 110 ** 2 + 1 / a)
    assert head(xt, yt).item() == pytest.approx(expected, rel=1e-12)
    assert head.logits(xt, yt).shape == (8, 4 + len(_kept_np(x, y)))


@pytest.mark.parametrize("base", ["cosface", "arcface", "magface"])
def test_unpg_single_identity_batch_equals_base_head(base):
    x, w, _ = _data()
    y = np.zeros(8, dtype=np.int64)
    head = build_head("unpg", base=base, embedding_size=5, num_classes=4).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    xt, yt = torch.from_numpy(x * 10).requires_grad_(), torch.from_numpy(y)
    assert head.kept_negatives(xt, yt).numel() == 0
    assert head.logits(xt, yt).shape == (8, 4)
    loss = head(xt, yt)
    (g,) = torch.autograd.grad(loss, xt)
    base_loss = head.base(xt, yt)
    (g_base,) = torch.autograd.grad(base_loss, xt)
    assert loss.item() == pytest.approx(base_loss.item(), rel=1e-14)  # same formula, two CE code paths
    torch.testing.assert_close(g, g_base, rtol=1e-12, atol=1e-14)


def test_unpg_fixed_base_aliases_and_margin_logits():
    head = build_head("unpg_cosface", embedding_size=5, num_classes=4, m=0.2, w=1.0)
    assert head.base.m3 == 0.2 and head.w == 1.0 and head.weight is head.base.weight
    cos = torch.tensor([[0.5, 0.1, 0.0, -0.2]])
    torch.testing.assert_close(head.margin_logits(cos, torch.tensor([0])), 64.0 * torch.tensor([[0.3, 0.1, 0.0, -0.2]]))
