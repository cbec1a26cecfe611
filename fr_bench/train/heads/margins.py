"""ONE target-logit margin for the angular heads: cos(m1 theta + m2) - m3, with its documented extensions.

This is the idea of arcface_torch's ``CombinedMarginLoss`` (and InsightFace's "combined margin"): SphereFace's
multiplicative angular margin ``m1``, ArcFace's additive angular margin ``m2`` and CosFace's additive cosine margin
``m3`` are three parameters of one formula for the target class,

    target(theta) = cos(m1 * theta + m2) - m3,      theta = arccos(cos_y),

valid while ``m1 * theta + m2 <= pi`` (beyond it the formula stops decreasing in theta, so a wrong sample would be
rewarded). What each paper's released code does past that point is the ``extension``:

* ``"arcface"`` (m1 = 1; arcface_torch, the default there): where ``cos_y <= cos(pi - m2)`` the target is
  ``cos_y - m2 sin(pi - m2) - m3``;
* ``"easy"`` (m1 = 1; arcface_torch ``easy_margin`` and MagFace's released ``MagLinear`` default): the angular margin
  is applied only where ``cos_y > 0``; elsewhere the target is ``cos_y - m3``;
* ``"psi"`` (m2 = 0; SphereFace's A-Softmax): psi(theta) = (-1)^k cos(m1 theta) - 2k on [k pi/m1, (k+1) pi/m1],
  k = 0..m1-1, the monotone continuation of cos(m1 theta) (computed, as in the released Caffe layer, with the
  Chebyshev polynomial cos(m1 theta) = T_m1(cos_y), so there is no arccos in the gradient path).

With m1 = 1 and m2 = 0 (CosFace) every extension gives ``cos_y - m3``. Presets: CosFace (1, 0, 0.35), ArcFace
(1, 0.5, 0), SphereFace's psi (4, 0, 0); MagFace passes a per-sample ``m2`` (a tensor).
"""

from __future__ import annotations

import math

import torch

EXTENSIONS = ("arcface", "easy", "psi")
_SIN_EPS = 1e-12  # keeps sqrt(1 - cos^2) differentiable at cos = +-1 (value error <= 1e-6)


def chebyshev_t(cos: torch.Tensor, m: int) -> torch.Tensor:
    """T_m(cos) = cos(m * arccos(cos)) by the recurrence T_{n+1} = 2 c T_n - T_{n-1} (exact polynomial)."""
    prev, cur = torch.ones_like(cos), cos
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, cur = cur, 2 * cos * cur - prev
    return cur


def a_softmax_psi(cos: torch.Tensor, m: int) -> torch.Tensor:
    """SphereFace's psi(theta) = (-1)^k cos(m theta) - 2k, k = floor(m theta / pi) clipped to [0, m - 1].

    ``k`` is piecewise constant (no gradient); psi is continuous at every k pi / m, decreasing on [0, pi].
    """
    with torch.no_grad():
        theta = torch.acos(cos.detach().clamp(-1.0, 1.0))
        k = torch.floor(m * theta / math.pi).clamp(0, m - 1)
        sign = 1.0 - 2.0 * torch.remainder(k, 2)
    return sign * chebyshev_t(cos, m) - 2.0 * k


def margin_target(
    cos: torch.Tensor,
    *,
    m1: int = 1,
    m2: float | torch.Tensor = 0.0,
    m3: float = 0.0,
    extension: str = "arcface",
) -> torch.Tensor:
    """The target-class cosine after the margin: cos(m1 theta + m2) - m3 and its ``extension`` (module docstring).

    ``cos`` holds target cosines (any shape, values in [-1, 1]); ``m2`` is a float or a tensor broadcastable to
    ``cos`` (MagFace's per-sample margin). ``m1`` is a positive integer; ``m1 > 1`` requires ``m2 == 0`` and the
    ``"psi"`` extension (A-Softmax), ``"arcface"`` / ``"easy"`` require ``m1 == 1``.
    """
    if extension not in EXTENSIONS:
        raise ValueError(f"unknown margin extension {extension!r}; choose one of {', '.join(EXTENSIONS)}")
    if int(m1) != m1 or m1 < 1:
        raise ValueError(f"m1 (multiplicative margin) must be a positive integer, got {m1}")
    m1 = int(m1)
    if extension == "psi":
        if not isinstance(m2, torch.Tensor) and m2 == 0.0:
            return a_softmax_psi(cos, m1) - m3
        raise ValueError("the A-Softmax psi extension is defined for m2 = 0 only")
    if m1 != 1:
        raise ValueError(f"m1 = {m1} (multiplicative margin) is SphereFace's A-Softmax: use extension='psi'")
    if not isinstance(m2, torch.Tensor) and m2 == 0.0:
        return cos - m3
    m2 = torch.as_tensor(m2, dtype=cos.dtype, device=cos.device)
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(_SIN_EPS))
    shifted = cos * torch.cos(m2) - sin * torch.sin(m2)  # cos(theta + m2)
    if extension == "easy":
        return torch.where(cos > 0, shifted, cos) - m3
    fallback = cos - torch.sin(math.pi - m2) * m2
    return torch.where(cos > torch.cos(math.pi - m2), shifted, fallback) - m3


def apply_target(cos: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``cos`` (B, C) with ``cos[i, labels[i]]`` replaced by ``target[i]``; rows with ``labels[i] < 0`` unchanged.

    (Label -1 is arcface_torch's Partial FC convention for a row whose class lives on another rank.)
    """
    idx = labels.clamp_min(0).unsqueeze(1)
    keep = cos.gather(1, idx).squeeze(1)
    new = torch.where(labels >= 0, target, keep)
    return cos.scatter(1, idx, new.unsqueeze(1))


def target_cos(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``cos[i, labels[i]]`` (rows with a negative label read column 0; :func:`apply_target` ignores them)."""
    return cos.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1)
