"""CosFace and ArcFace: one margin head, two presets of :func:`~fr_bench.train.heads.margins.margin_target`.

* ``cosface`` (Wang et al. 2018, "CosFace: Large Margin Cosine Loss"): target logit s (cos theta_y - m),
  s = 64, m = 0.35 (the paper's face setting; arcface_torch's CosFace config, margin_list (1.0, 0.0, 0.4),
  uses m = 0.4).
* ``arcface`` (Deng et al. 2019): target logit s cos(theta_y + m), s = 64, m = 0.5 (paper and arcface_torch
  ``margin_list = (1.0, 0.5, 0.0)``); where cos theta_y <= cos(pi - m) the target is cos theta_y - m sin(pi - m)
  (arcface_torch's fallback); ``easy_margin=True`` applies the margin only where cos theta_y > 0 instead.

Non-target logits are s cos theta_j. ``margin_logits(cos, labels, norms=None)`` applies the margin to
precomputed cosines (``norms`` unused here); rows labelled -1 get no margin (Partial FC convention).
"""

from __future__ import annotations

import torch

from fr_bench.train.heads.base import CosineHead
from fr_bench.train.heads.margins import apply_target, margin_target, target_cos


class MarginHead(CosineHead):
    """Normalised classifier with the combined margin cos(m1 theta + m2) - m3 on the target, scaled by ``s``."""

    def __init__(self, embedding_size: int, num_classes: int, *, s: float, m1: int = 1, m2: float = 0.0,
                 m3: float = 0.0, extension: str = "arcface", init: str = "normal") -> None:
        super().__init__(embedding_size, num_classes, init=init)
        if s <= 0:
            raise ValueError(f"scale s must be positive, got {s}")
        self.s, self.m1, self.m2, self.m3, self.extension = float(s), int(m1), float(m2), float(m3), extension
        margin_target(torch.zeros(1), m1=self.m1, m2=self.m2, m3=self.m3, extension=extension)  # validate now

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        """s * cos with the target column replaced by s * (cos(m1 theta_y + m2) - m3); ``norms`` is unused."""
        target = margin_target(target_cos(cos, labels), m1=self.m1, m2=self.m2, m3=self.m3,
                               extension=self.extension)
        return self.s * apply_target(cos, labels, target)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, s={self.s}, m1={self.m1}, m2={self.m2}, m3={self.m3}, "
                f"extension={self.extension!r}")


def cosface(embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.35) -> MarginHead:
    """CosFace / AM-Softmax: s (cos theta_y - m) on the target, s cos theta_j elsewhere."""
    return MarginHead(embedding_size, num_classes, s=s, m3=m)


def arcface(embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5,
            easy_margin: bool = False) -> MarginHead:
    """ArcFace: s cos(theta_y + m) on the target (arcface_torch fallback past pi - m, or ``easy_margin``)."""
    return MarginHead(embedding_size, num_classes, s=s, m2=m, extension="easy" if easy_margin else "arcface")
