"""MagFace (Meng et al. 2021) as its released code (IrvingMeng/MagFace ``models/magface.py``) trains it.

a = ||x|| clamped to [l_a, u_a] = [10, 110]; the margin grows linearly with it,
m(a) = (u_m - l_m) / (u_a - l_a) (a - l_a) + l_m with [l_m, u_m] = [0.45, 0.8]; the target logit is
s cos(theta_y + m(a)) with the released ``MagLinear`` default ``easy_margin=True`` (the margin only where
cos theta_y > 0, else cos theta_y), s = 64; the loss adds lambda_g mean(g(a)), g(a) = a / u_a^2 + 1 / a,
lambda_g = 35 (the released training scripts' ``--lambda-g 35``). As in that code the gradient flows through the
clamped norm into both m(a) and g(a) (it is zero outside [l_a, u_a]). At test time ||x|| is the quality score.

``margin_logits(cos, labels, norms)`` needs the raw feature norms ||x|| (B,) (they are clamped here).
"""

from __future__ import annotations

import torch

from fr_bench.train.heads.base import CosineHead, full_precision
from fr_bench.train.heads.margins import apply_target, margin_target, target_cos


class MagFaceHead(CosineHead):
    """Magnitude-aware angular margin + the g(a) regulariser."""

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, l_a: float = 10.0,
                 u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8, lambda_g: float = 35.0,
                 easy_margin: bool = True) -> None:
        super().__init__(embedding_size, num_classes)
        if not 0 < l_a < u_a:
            raise ValueError(f"MagFace needs 0 < l_a < u_a, got l_a={l_a}, u_a={u_a}")
        self.s, self.l_a, self.u_a, self.l_m, self.u_m = float(s), float(l_a), float(u_a), float(l_m), float(u_m)
        self.lambda_g = float(lambda_g)
        self.extension = "easy" if easy_margin else "arcface"

    def magnitude(self, norms: torch.Tensor) -> torch.Tensor:
        """a = ||x|| clamped to [l_a, u_a]."""
        return full_precision(norms).clamp(self.l_a, self.u_a)

    def margin(self, a: torch.Tensor) -> torch.Tensor:
        """m(a) = (u_m - l_m) / (u_a - l_a) (a - l_a) + l_m."""
        return (self.u_m - self.l_m) / (self.u_a - self.l_a) * (a - self.l_a) + self.l_m

    def g(self, a: torch.Tensor) -> torch.Tensor:
        """The magnitude regulariser g(a) = a / u_a^2 + 1 / a."""
        return a / self.u_a ** 2 + 1.0 / a

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        """s cos theta_j, target s cos(theta_y + m(a)) (easy-margin rule); ``norms`` = raw ||x|| (B,) required."""
        if norms is None:
            raise ValueError("MagFace's margin depends on the feature norm: pass norms=||x|| (shape (B,))")
        m = self.margin(self.magnitude(norms))
        target = margin_target(target_cos(cos, labels), m2=m, extension=self.extension)
        return self.s * apply_target(cos, labels, target)

    def regularizer(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """lambda_g * mean(g(a))."""
        return self.lambda_g * self.g(self.magnitude(full_precision(embeddings).norm(dim=1))).mean()

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, s={self.s}, a=[{self.l_a}, {self.u_a}], m=[{self.l_m}, {self.u_m}], "
                f"lambda_g={self.lambda_g}, extension={self.extension!r}")


def magface(embedding_size: int, num_classes: int, *, s: float = 64.0, l_a: float = 10.0, u_a: float = 110.0,
            l_m: float = 0.45, u_m: float = 0.8, lambda_g: float = 35.0, easy_margin: bool = True) -> MagFaceHead:
    """MagFace with the released defaults (s 64, a in [10, 110], m in [0.45, 0.8], lambda_g 35, easy margin)."""
    return MagFaceHead(embedding_size, num_classes, s=s, l_a=l_a, u_a=u_a, l_m=l_m, u_m=u_m, lambda_g=lambda_g,
                       easy_margin=easy_margin)
