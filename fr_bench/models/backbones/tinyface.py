"""A small, fast backbone for CPU training runs.

* ``tinyface``: four stride-2 conv-BN-PReLU stages (3x3), an adaptive average pool to 4x4 (the identity at 64x64
  input), then the arcface-style "flatten -> FC -> BN1d" embedding layer (spatial layout is kept, as in iresnet's
  output layer). About 1.1 M parameters with ``width=16`` and 512-d output, most in the FC: small enough for the
  all-recipes study on a 2-core CPU. ``norm="group"`` replaces every BatchNorm by a per-sample GroupNorm, so a
  forward pass does not depend on what else is in the batch (used to compare one process with DDP ranks exactly).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"tinyface: norm must be 'batch', 'group' or 'none', got {kind!r}")


class TinyFace(nn.Module):
    """Four stride-2 3x3 conv stages (``width``, 2, 4, 8 x ``width`` channels) and a flatten-FC-BN embedding."""

    def __init__(self, num_features: int = 512, width: int = 16, norm: str = "batch") -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), _norm2d(norm, cout), nn.PReLU(cout)]
        layers.append(nn.AdaptiveAvgPool2d(4))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1] * 16, num_features, bias=False)
        self.bn = nn.BatchNorm1d(num_features) if norm == "batch" else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(torch.flatten(self.features(x), 1)))


def tinyface(*, num_features: int = 512, width: int = 16, norm: str = "batch") -> TinyFace:
    """The ``tinyface`` architecture."""
    return TinyFace(num_features=num_features, width=width, norm=norm)
