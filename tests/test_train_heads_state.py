"""Heads with rule-updated state: Center loss (the paper's centre update on a hand-worked case) and IR-Softmax
(weights = normalised running class centres)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_heads_reference as ref
from fr_bench.train import build_head


def test_center_loss_value_gradient_and_paper_update_hand_worked():
    head = build_head("center", embedding_size=2, num_classes=3).double()
    assert head.lam == 0.003 and head.alpha == 0.5
    assert "centers" in dict(head.named_buffers()) and all(p is not head.centers for p in head.parameters())
    with torch.no_grad():
        head.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss = head(x, y)
    # L_C = 1/2 mean ||x - c||^2 = 1/2 (1 + 9 + 2) / 3 = 2 with the centres before the update
    ce = F.cross_entropy(head.fc(x), y)
    assert loss.item() == pytest.approx(ce.item() + 0.003 * 2.0, rel=1e-12)
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g_ce,) = torch.autograd.grad(ce, x)
    expected = 0.003 * torch.tensor([[1.0, 0.0], [3.0, 0.0], [1.0, 1.0]], dtype=torch.float64) / 3
    torch.testing.assert_close(g - g_ce, expected)
    # paper eq. 4: c_0 <- c_0 - 0.5 ((0-1) + (0-3), 0) / (1 + 2) = (2/3, 0); c_1 <- (1,1) - 0.5 (-1,-1)/2 = (1.25, 1.25)
    torch.testing.assert_close(head.centers, torch.tensor([[2 / 3, 0.0], [1.25, 1.25], [5.0, 5.0]],
                                                          dtype=torch.float64))


def test_center_loss_centres_frozen_in_eval_and_not_optimised():
    head = build_head("center", embedding_size=2, num_classes=3)
    before = head.centers.clone()
    head.eval()
    head(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    assert torch.equal(head.centers, before)
    names = {n for n, _ in head.named_parameters()}
    assert names == {"fc.weight", "fc.bias"}
    assert head.weight.shape == (3, 2)


def _ir(base="cosface", momentum=0.5):
    head = build_head(f"ir_{base}", embedding_size=2, num_classes=3, momentum=momentum).double()
    init = F.normalize(torch.tensor([[1.0, -1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64))
    with torch.no_grad():
        head.weight.copy_(init)
    return head, init


def test_ir_softmax_weights_are_normalised_running_centres():
    head, init = _ir()
    assert not any(p is head.weight for p in head.parameters()) and list(head.parameters()) == []
    x1 = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    head(x1, torch.tensor([0, 0, 1]))
    # first sight: centre = batch mean. c0 = (1, 1), c1 = (3, 4); class 2 unseen keeps its initial weight
    torch.testing.assert_close(head.weight, torch.stack([
        torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2), torch.tensor([0.6, 0.8], dtype=torch.float64),
        init[2]]))
    w_before = head.weight.clone()
    x2 = torch.tensor([[4.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = head(x2, torch.tensor([0]))
    # the loss uses the weights before this batch's update (CosFace, s 64, m 0.35)
    cos = ref.cosines(x2.detach().numpy(), w_before.numpy())
    z = 64.0 * ref.with_target(cos, np.array([0]), lambda i, c: c - 0.35)
    assert loss.item() == pytest.approx(ref.cross_entropy(z, np.array([0])), rel=1e-12)
    # c0 <- 0.5 (1, 1) + 0.5 (4, 0) = (2.5, 0.5)
    torch.testing.assert_close(head.centers[0], torch.tensor([2.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(head.weight[0], F.normalize(torch.tensor([2.5, 0.5], dtype=torch.float64), dim=0))
    torch.testing.assert_close(head.weight[1:], w_before[1:])
    loss.backward()
    assert x2.grad is not None and torch.isfinite(x2.grad).all()  # gradient reaches the features, not the weights


def test_ir_softmax_running_centre_over_many_batches_matches_direct_recursion():
    head, _ = _ir("sphereface", momentum=0.9)
    rng = np.random.default_rng(2)
    centre = None
    for _ in range(5):
        x = rng.normal(size=(4, 2)) + np.array([3.0, 1.0])
        y = np.array([2, 2, 2, 0])
        head(torch.from_numpy(x), torch.from_numpy(y))
        mean = x[:3].mean(axis=0)
        centre = mean if centre is None else 0.9 * centre + 0.1 * mean
    np.testing.assert_allclose(head.centers[2].numpy(), centre, rtol=1e-12)
    np.testing.assert_allclose(head.weight[2].numpy(), centre / np.linalg.norm(centre), rtol=1e-12)
    assert head.seen.tolist() == [True, False, True]


def test_ir_softmax_eval_mode_leaves_weights():
    head, init = _ir()
    head.eval()
    head(torch.randn(3, 2, dtype=torch.float64), torch.tensor([0, 1, 2]))
    torch.testing.assert_close(head.weight, init)
    with pytest.raises(ValueError, match="momentum"):
        build_head("ir_softmax", embedding_size=2, num_classes=3, momentum=1.0)
