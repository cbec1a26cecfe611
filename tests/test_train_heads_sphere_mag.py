"""SphereFace (A-Softmax with the annealed lambda) and MagFace against their formulas written out in numpy:
values and finite-difference gradients; MagFace's magnitude at and beyond both clamp bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import train_heads_reference as ref
from fr_bench.train import build_head


def _sphere_data():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 4))
    x = rng.normal(size=(7, 4)) * 2.0
    x[5] = -1.5 * w[0] + 0.1 * rng.normal(size=4)    # theta near pi: psi interval k = 3
    x[6] = 1.5 * w[1] + 0.1 * rng.normal(size=4)     # theta small: k = 0
    y = np.array([0, 1, 2, 3, 4, 0, 1])
    return x, w, y


def _sphere_logits_np(x, w, y, lam, m=4):
    norms = np.linalg.norm(x, axis=1)
    cos = ref.cosines(x, w)
    return norms[:, None] * ref.with_target(cos, y, lambda i, c: (lam * c + ref.psi(c, m)) / (1 + lam))


@pytest.mark.parametrize("lam", [0.0, 5.0, 1000.0])
def test_sphereface_matches_a_softmax_formula(lam):
    x, w, y = _sphere_data()
    head = build_head("sphereface", embedding_size=4, num_classes=5, lam=lam)
    loss, gx, gw, logits = ref.head_loss_and_grads(head, x, w, y)
    np.testing.assert_allclose(logits, _sphere_logits_np(x, w, y, lam), rtol=1e-12, atol=1e-10)
    cos_y = ref.cosines(x, w)[np.arange(7), y]
    ks = {min(3, int(4 * math.acos(c) / math.pi)) for c in cos_y}
    assert {0, 3} <= ks and len(ks) >= 3  # several psi intervals exercised

    def f(xx, ww):
        return ref.cross_entropy(_sphere_logits_np(xx, ww, y, lam), y)

    assert loss == pytest.approx(f(x, w), rel=1e-12)
    np.testing.assert_allclose(gx, ref.numeric_grad(lambda a: f(a, w), x.copy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref.numeric_grad(lambda a: f(x, a), w.copy()), rtol=1e-5, atol=1e-6)


def test_sphereface_lambda_schedule_is_the_released_one():
    head = build_head("sphereface", embedding_size=4, num_classes=5)
    assert head.lam == 1000.0  # before any on_step: step 0
    for step in (1, 10, 100, 1000, 1658, 1659, 50000):
        head.on_step(step)
        assert head.lam == pytest.approx(max(5.0, 1000.0 * (1 + 0.12 * step) ** -1.0), rel=1e-15)
    head.on_step(1658)
    assert head.lam > 5.0
    head.on_step(1659)
    assert head.lam == 5.0  # the floor
    fixed = build_head("sphereface", embedding_size=4, num_classes=5, lam=7.0)
    fixed.on_step(0)
    fixed.on_step(10 ** 6)
    assert fixed.lam == 7.0


def test_sphereface_on_step_is_forwarded_by_ir_softmax():
    head = build_head("ir_sphereface", embedding_size=4, num_classes=5)
    head.on_step(100)
    assert head.base.lam == pytest.approx(1000.0 / (1 + 12.0))


def test_sphereface_margin_logits_requires_norms():
    head = build_head("sphereface", embedding_size=4, num_classes=5)
    with pytest.raises(ValueError, match="norms"):
        head.margin_logits(torch.zeros(2, 5), torch.tensor([0, 1]))


def _mag_np(x, w, y, s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0):
    a = np.clip(np.linalg.norm(x, axis=1), l_a, u_a)
    m = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    cos = ref.cosines(x, w)

    def target(i, c):
        return math.cos(math.acos(c) + m[i]) if c > 0 else c

    z = s * ref.with_target(cos, y, target)
    g = a / u_a ** 2 + 1.0 / a
    return z, ref.cross_entropy(z, y) + lambda_g * g.mean(), m


def _mag_data(norms):
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 6))
    x = rng.normal(size=(len(norms), 6))
    x[1] = w[1] + 0.3 * rng.normal(size=6)   # positive target cosines ...
    x[2] = -w[2] + 0.3 * rng.normal(size=6)  # ... and negative ones (easy-margin branch)
    x = ref.normalize_rows(x) * np.asarray(norms, dtype=float)[:, None]
    y = np.array([0, 1, 2, 3, 0, 1][: len(norms)])
    return x, w, y


def test_magface_matches_formula_values_and_gradients():
    x, w, y = _mag_data([5.0, 30.0, 60.0, 95.0, 200.0, 50.0])  # below, inside and above [10, 110]
    loss, gx, gw, logits = ref.head_loss_and_grads(build_head("magface", embedding_size=6, num_classes=4), x, w, y)
    z, expected, m = _mag_np(x, w, y)
    target = ref.cosines(x, w)[np.arange(6), y]
    assert (target > 0).any() and (target <= 0).any()
    np.testing.assert_allclose(logits, z, rtol=1e-12, atol=1e-9)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert m[0] == pytest.approx(0.45) and m[4] == pytest.approx(0.8)  # clamped at both bounds
    np.testing.assert_allclose(gx, ref.numeric_grad(lambda a: _mag_np(a, w, y)[1], x.copy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, ref.numeric_grad(lambda a: _mag_np(x, a, y)[1], w.copy()), rtol=1e-5, atol=1e-6)
    # beyond the bounds the norm has no gradient: the gradient of those rows is orthogonal to x
    for i in (0, 4):
        assert abs(gx[i] @ x[i]) < 1e-9 * np.linalg.norm(gx[i]) * np.linalg.norm(x[i]) + 1e-12


def test_magface_at_exact_clamp_bounds_and_regulariser_gradient():
    head = build_head("magface", embedding_size=6, num_classes=4).double()
    a = torch.tensor([10.0, 110.0, 50.0], dtype=torch.float64, requires_grad=True)
    assert head.margin(head.magnitude(a)).tolist() == pytest.approx([0.45, 0.8, 0.45 + 0.35 * 0.4])
    g = head.g(head.magnitude(a))
    assert g.tolist() == pytest.approx([10 / 110 ** 2 + 0.1, 1 / 110 + 1 / 110, 50 / 110 ** 2 + 1 / 50])
    g[2].backward()
    assert a.grad[2].item() == pytest.approx(1 / 110 ** 2 - 1 / 50 ** 2)  # g'(a) = 1/u_a^2 - 1/a^2
    with pytest.raises(ValueError, match="norms"):
        head.margin_logits(torch.zeros(2, 4), torch.tensor([0, 1]))


def test_magface_without_easy_margin_uses_arcface_fallback():
    x, w, y = _mag_data([20.0, 30.0, 60.0, 95.0])
    head = build_head("magface", embedding_size=6, num_classes=4, easy_margin=False).double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    logits = head.logits(torch.from_numpy(x), torch.from_numpy(y)).detach().numpy()
    a = np.linalg.norm(x, axis=1)
    m = 0.35 / 100 * (a - 10) + 0.45
    assert ref.cosines(x, w)[2, 2] < math.cos(math.pi - m[2])  # the fallback branch is exercised
    expected = 64 * ref.with_target(ref.cosines(x, w), y, lambda i, c: ref.arcface_target(c, m[i]))
    np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-9)
