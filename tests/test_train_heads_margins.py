"""The combined margin and the CosFace/ArcFace heads against the papers' formulas (numpy, element by element),
values and gradients, with the edges: theta near pi, the arcface_torch fallback, easy margin, A-Softmax psi on
every interval and its continuity; plus the head registry's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_heads_reference as ref
from fr_bench.train import HeadConfigError, build_head, head_defaults, list_heads
from fr_bench.train.heads.margins import a_softmax_psi, chebyshev_t, margin_target


def _data():
    """Fixed weights and embeddings; row 5 points away from its class (cos ~ -0.99: ArcFace fallback branch)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 4))
    x = rng.normal(size=(6, 4)) * 3.0
    x[5] = -2.0 * w[1] + 0.05 * rng.normal(size=4)
    y = np.array([0, 1, 2, 3, 4, 1])
    return x, w, y


def _check_head(name, params, target_fn, s):
    x, w, y = _data()

    def loss_np(xx, ww):
        cos = ref.cosines(xx, ww)
        return ref.cross_entropy(s * ref.with_target(cos, y, lambda i, c: target_fn(c)), y)

    loss, gx, gw, logits = ref.head_loss_and_grads(build_head(name, embedding_size=4, num_classes=5, **params), x, w, y)
    cos = ref.cosines(x, w)
    np.testing.assert_allclose(logits, s * ref.with_target(cos, y, lambda i, c: target_fn(c)), rtol=1e-12, atol=1e-9)
    assert loss == pytest.approx(loss_np(x, w), rel=1e-12)
    np.testing.assert_allclose(gx, ref.numeric_grad(lambda a: loss_np(a, w), x.copy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref.numeric_grad(lambda a: loss_np(x, a), w.copy()), rtol=1e-5, atol=1e-6)
    return cos


def test_cosface_head_matches_formula_values_and_gradients():
    _check_head("cosface", {}, lambda c: c - 0.35, 64.0)
    _check_head("cosface", {"s": 30.0, "m": 0.2}, lambda c: c - 0.2, 30.0)


def test_arcface_head_matches_formula_including_fallback():
    cos = _check_head("arcface", {}, lambda c: ref.arcface_target(c, 0.5), 64.0)
    target = cos[np.arange(6), _data()[2]]
    assert cos[5, 1] < math.cos(math.pi - 0.5)  # the fallback branch was exercised
    assert (target > math.cos(math.pi - 0.5)).sum() >= 3  # and the principal branch


def test_arcface_easy_margin_matches_formula():
    cos = _check_head("arcface", {"easy_margin": True}, lambda c: ref.arcface_target(c, 0.5, easy=True), 64.0)
    target = cos[np.arange(6), _data()[2]]
    assert (target > 0).any() and (target <= 0).any()  # both branches exercised


@pytest.mark.parametrize("extension,easy", [("arcface", False), ("easy", True)])
def test_arcface_target_grid_and_theta_near_pi(extension, easy):
    c = np.concatenate([np.linspace(-1, 1, 401), [math.cos(math.pi - 1e-4), -1.0, 1.0]])
    ct = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    out = margin_target(ct, m2=0.5, extension=extension)
    expected = [ref.arcface_target(v, 0.5, easy) for v in c]
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=2e-6)  # 1e-6: sin clamp at |cos| = 1
    out.sum().backward()
    assert torch.isfinite(ct.grad).all()
    # near pi the target is on the linear fallback (arcface) or unchanged (easy): derivative exactly 1
    assert ct.grad[-2].item() == pytest.approx(1.0) and ct.grad[-3].item() == pytest.approx(1.0)
    # analytic derivative of cos(arccos c + m) = cos m + c sin m / sqrt(1 - c^2) on the principal branch
    inside = (np.abs(c) < 0.99) & (c > (0 if easy else math.cos(math.pi - 0.5)))
    d = math.cos(0.5) + c * math.sin(0.5) / np.sqrt(np.clip(1 - c * c, 1e-300, None))
    np.testing.assert_allclose(ct.grad.numpy()[inside], d[inside], rtol=1e-9)


def test_cosface_at_theta_pi_has_finite_gradient():
    ct = torch.tensor([-1.0, 1.0], dtype=torch.float64, requires_grad=True)
    out = margin_target(ct, m3=0.35)
    out.sum().backward()
    assert out.tolist() == pytest.approx([-1.35, 0.65]) and ct.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_chebyshev_is_cos_m_theta(m):
    theta = np.linspace(0, math.pi, 101)
    got = chebyshev_t(torch.tensor(np.cos(theta)), m).numpy()
    np.testing.assert_allclose(got, np.cos(m * theta), atol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_psi_on_every_interval_value_and_gradient(k):
    m = 4
    theta = np.linspace(k * math.pi / m, (k + 1) * math.pi / m, 23)[1:-1]
    ct = torch.tensor(np.cos(theta), requires_grad=True)
    out = a_softmax_psi(ct, m)
    np.testing.assert_allclose(out.detach().numpy(), (-1) ** k * np.cos(m * theta) - 2 * k, atol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), [ref.psi(v, m) for v in np.cos(theta)], atol=1e-12)
    out.sum().backward()
    # d psi / d cos = (-1)^k m sin(m theta) / sin(theta)
    np.testing.assert_allclose(ct.grad.numpy(), (-1) ** k * m * np.sin(m * theta) / np.sin(theta), rtol=1e-8)
    assert torch.autograd.gradcheck(lambda c: a_softmax_psi(c, m), (ct.detach().clone().requires_grad_(),))


def test_psi_is_continuous_at_interval_ends_and_decreasing():
    m = 4
    for k in range(0, m + 1):
        t = k * math.pi / m
        left = a_softmax_psi(torch.tensor([math.cos(max(t - 1e-9, 0.0))], dtype=torch.float64), m).item()
        right = a_softmax_psi(torch.tensor([math.cos(min(t + 1e-9, math.pi))], dtype=torch.float64), m).item()
        assert left == pytest.approx(right, abs=1e-7)
        assert left == pytest.approx(ref.psi(math.cos(t), m), abs=1e-7)
    grid = a_softmax_psi(torch.tensor(np.cos(np.linspace(0, math.pi, 2001))), m).numpy()
    assert np.all(np.diff(grid) < 0)
    assert grid[0] == pytest.approx(1.0) and grid[-1] == pytest.approx(1 - 2 * m)  # psi(0) = 1, psi(pi) = 1 - 2m
    ct = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    a_softmax_psi(ct, m).sum().backward()
    assert torch.isfinite(ct.grad).all()


def test_margin_rejects_inconsistent_parameters():
    c = torch.zeros(3)
    with pytest.raises(ValueError, match="psi"):
        margin_target(c, m1=4, m2=0.0)
    with pytest.raises(ValueError, match="m2 = 0"):
        margin_target(c, m1=4, m2=0.5, extension="psi")
    with pytest.raises(ValueError, match="positive integer"):
        margin_target(c, m1=1.5, extension="psi")
    with pytest.raises(ValueError, match="unknown margin extension"):
        margin_target(c, extension="hard")


def test_margin_logits_skips_rows_labelled_minus_one():
    head = build_head("arcface", embedding_size=4, num_classes=3)
    cos = torch.tensor([[0.5, 0.2, -0.1], [0.3, 0.9, 0.0]])
    out = head.margin_logits(cos, torch.tensor([-1, 1]))
    assert torch.equal(out[0], 64.0 * cos[0])
    assert out[1, 1].item() == pytest.approx(64.0 * math.cos(math.acos(0.9) + 0.5), rel=1e-6)


def test_registry_lists_every_recipe_head_and_defaults():
    names = set(list_heads())
    assert {"softmax", "center", "sphereface", "cosface", "arcface", "magface", "unpg", "groupface",
            "ir_softmax", "ir_sphereface", "ir_cosface", "unpg_cosface", "unpg_arcface", "unpg_magface"} <= names
    assert head_defaults("arcface") == {"s": 64.0, "m": 0.5, "easy_margin": False}
    assert head_defaults("cosface") == {"s": 64.0, "m": 0.35}
    assert head_defaults("sphereface")["m"] == 4 and head_defaults("sphereface")["lambda_min"] == 5.0
    head = build_head("unpg", base="cosface", m=0.2, embedding_size=4, num_classes=3)
    assert head.head_name == "unpg" and head.head_params == {"base": "cosface", "w": 1.5, "gather": False, "m": 0.2}


def test_registry_errors_list_valid_choices():
    with pytest.raises(HeadConfigError, match=r"unknown head 'arcfce'.*arcface.*cosface"):
        build_head("arcfce", embedding_size=4, num_classes=3)
    with pytest.raises(HeadConfigError, match=r"'margin'.*head 'arcface'.*valid parameters: s, m, easy_margin"):
        build_head("arcface", embedding_size=4, num_classes=3, margin=0.5)
    with pytest.raises(HeadConfigError, match=r"'lamda'.*head 'magface'.*lambda_g.*base, w, gather"):
        build_head("unpg", base="magface", embedding_size=4, num_classes=3, lamda=3)
    with pytest.raises(HeadConfigError, match="UNPG wraps one of cosface, arcface, magface"):
        build_head("unpg", base="sphereface", embedding_size=4, num_classes=3)
    with pytest.raises(HeadConfigError, match="IR-Softmax wraps one of sphereface, cosface"):
        build_head("ir_softmax", base="arcface", embedding_size=4, num_classes=3)
    with pytest.raises(HeadConfigError, match="fixes base"):
        build_head("ir_cosface", base="sphereface", embedding_size=4, num_classes=3)
    with pytest.raises(HeadConfigError, match="positive"):
        build_head("softmax", embedding_size=0, num_classes=3)


def test_softmax_head_is_linear_with_bias_plus_cross_entropy():
    head = build_head("softmax", embedding_size=4, num_classes=3).double()
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1])
    z = x @ head.weight.t() + head.fc.bias
    assert head.weight.shape == (3, 4) and head.fc.bias is not None
    torch.testing.assert_close(head(x, y), F.cross_entropy(z, y))
    torch.testing.assert_close(head.logits(x, y), z)
