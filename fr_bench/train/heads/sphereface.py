"""SphereFace's A-Softmax (Liu et al. 2017), as its released Caffe ``MarginInnerProduct`` layer trains it.

Weights normalised, no bias, features NOT normalised: the logit of class j is ||x|| cos theta_j, and the target's is

    f_y = ||x|| (lambda cos theta_y + psi(theta_y)) / (1 + lambda),
    psi(theta) = (-1)^k cos(m theta) - 2k  on  [k pi / m, (k+1) pi / m],   m = 4 (``QUADRUPLE``),

with lambda annealed from the released prototxt's schedule (``base: 1000, gamma: 0.12, power: 1,
lambda_min: 5``): lambda(step) = max(lambda_min, base (1 + gamma step)^-power). The trainer calls
:meth:`SphereFaceHead.on_step` before every forward; before any call lambda = lambda(0) = base. (The Caffe layer
increments its counter before use, so its first forward has step 1; the one-step shift is immaterial.) ``lam``
fixes lambda (e.g. ``lam=5`` for the final regime, ``lam=0`` for pure A-Softmax).

psi is :func:`~fr_bench.train.heads.margins.margin_target` with m1 = m and the ``"psi"`` extension: the same
combined-margin formula as CosFace/ArcFace. Gradients are autograd's exact ones; the Caffe layer's backward
rescales the target's gradient direction (a heuristic of that code), which we do not reproduce.
"""

from __future__ import annotations

import torch

from fr_bench.train.heads.base import CosineHead, full_precision
from fr_bench.train.heads.margins import apply_target, margin_target, target_cos


class SphereFaceHead(CosineHead):
    """A-Softmax head with the annealed lambda blend of the released code."""

    def __init__(self, embedding_size: int, num_classes: int, *, m: int = 4, lam: float | None = None,
                 base: float = 1000.0, gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0) -> None:
        super().__init__(embedding_size, num_classes, init="xavier")
        if int(m) != m or not 1 <= m:
            raise ValueError(f"SphereFace m must be a positive integer, got {m}")
        if lam is not None and lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.m = int(m)
        self.fixed_lambda = None if lam is None else float(lam)
        self.base, self.gamma, self.power, self.lambda_min = float(base), float(gamma), float(power), float(lambda_min)
        self.lam = self.lambda_at(0)

    def lambda_at(self, step: int) -> float:
        """lambda at optimisation step ``step``: the fixed ``lam`` if given, else the released schedule."""
        if self.fixed_lambda is not None:
            return self.fixed_lambda
        return max(self.lambda_min, self.base * (1.0 + self.gamma * step) ** (-self.power))

    def on_step(self, step: int) -> None:
        """Trainer hook, called before each forward: set lambda for step ``step`` (0-based)."""
        self.lam = self.lambda_at(int(step))

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        """||x|| cos theta_j, target ||x|| (lambda cos + psi) / (1 + lambda); ``norms`` = ||x|| (B,) is required."""
        if norms is None:
            raise ValueError("SphereFace logits are scaled by the feature norm: pass norms=||x|| (shape (B,))")
        cy = target_cos(cos, labels)
        psi = margin_target(cy, m1=self.m, extension="psi")
        target = (self.lam * cy + psi) / (1.0 + self.lam)
        return full_precision(norms).unsqueeze(1) * apply_target(cos, labels, target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, m={self.m}, lambda={self.lam:g}"


def sphereface(embedding_size: int, num_classes: int, *, m: int = 4, lam: float | None = None,
               base: float = 1000.0, gamma: float = 0.12, power: float = 1.0,
               lambda_min: float = 5.0) -> SphereFaceHead:
    """A-Softmax, m = 4, lambda annealed max(5, 1000 (1 + 0.12 step)^-1) unless ``lam`` fixes it."""
    return SphereFaceHead(embedding_size, num_classes, m=m, lam=lam, base=base, gamma=gamma, power=power,
                          lambda_min=lambda_min)
