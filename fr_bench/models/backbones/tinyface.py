"""Small, fast backbones for CPU training runs, and the input-resizing wrapper for models trained below 112x112.

* ``tinyface``: four stride-2 conv-BN-PReLU stages (3x3), an adaptive average pool to 4x4 (the identity at 64x64
  input), then the arcface-style "flatten -> FC -> BN1d" embedding layer (spatial layout is kept, as in iresnet's
  output layer). About 1.1 M parameters with ``width=16`` and 512-d output, most in the FC: small enough for the
  all-recipes study on a 2-core CPU. ``norm="group"`` replaces every BatchNorm by a per-sample GroupNorm, so a
  forward pass does not depend on what else is in the batch (used to compare one process with DDP ranks exactly).
* ``resize_input``: any registered backbone behind a bilinear (antialiased) resize of its input to ``input_size``.
  A model trained on 64x64 images is evaluated on the aligned 112x112 crops every protocol delivers by resizing
  them inside its own forward; the extractor feeds crops at the size the input contract states (112x112) and
  never resizes. Resizing the normalised float input equals normalising the resized pixels (the bilinear weights
  sum to one), so the contract's mean/std apply unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
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


class ResizeInput(nn.Module):
    """``net(resize(x, input_size))``: a backbone trained at ``input_size`` fed crops of any size."""

    def __init__(self, arch: str, input_size: int | Sequence[int], arch_kwargs: Mapping[str, Any] | None = None,
                 *, net: nn.Module | None = None) -> None:
        super().__init__()
        from fr_bench.models.backbones import create_backbone

        self.size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
        self.net = net if net is not None else create_backbone(arch, **dict(arch_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)


def resize_input(*, arch: str, input_size: int | Sequence[int], arch_kwargs: Mapping[str, Any] | None = None
                 ) -> ResizeInput:
    """The ``resize_input`` wrapper: backbone ``arch`` (built with ``arch_kwargs``) fed at ``input_size``."""
    return ResizeInput(arch, input_size, arch_kwargs)


def resize_around(net: nn.Module, input_size: int | Sequence[int]) -> ResizeInput:
    """An existing module ``net`` behind the same resize (validation of a network while it trains)."""
    return ResizeInput("", input_size, net=net)
