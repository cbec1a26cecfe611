"""MobileFaceNet as trained by insightface's arcface_torch (``mbf`` / ``mbf_large``), with its parameter names.

Structure (names as in the arcface_torch state dicts):

* ``layers`` (ModuleList): stem ``ConvBlock`` 3x3 stride 2; a depthwise ``ConvBlock`` (or a ``Residual`` stack when
  the first stage has more than one block); then alternately a stride-2 ``DepthWise`` and a ``Residual`` stack,
  three times. ``ConvBlock.layers`` = conv, BN, PReLU; ``LinearBlock.layers`` = conv, BN;
  ``DepthWise.layers`` = 1x1 expand ``ConvBlock``, depthwise ``ConvBlock``, 1x1 project ``LinearBlock``;
  ``Residual.layers`` = residual ``DepthWise`` blocks.
* ``conv_sep``: 1x1 ``ConvBlock`` to 512 channels.
* ``features`` (GDC): ``layers`` = 7x7 depthwise ``LinearBlock``, flatten, ``Linear`` (no bias), ``BatchNorm1d``.

``mobilefacenet`` uses blocks (1, 4, 6, 2) and width scale 2 (arcface_torch ``mbf``); ``mobilefacenet_large``
blocks (2, 8, 12, 4) and scale 4 (``mbf_large``). The arcface_torch ``fp16`` switch (autocast inside ``forward``) is
not reproduced: fr_bench's extractor owns mixed precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

Pair = tuple[int, int]


class ConvBlock(nn.Module):
    """conv -> BN -> PReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Pair = (1, 1), stride: Pair = (1, 1),
                 padding: Pair = (0, 0), groups: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.PReLU(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    """conv -> BN (no activation)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Pair = (1, 1), stride: Pair = (1, 1),
                 padding: Pair = (0, 0), groups: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand to ``inner`` channels, depthwise conv, 1x1 linear projection."""

    def __init__(self, in_ch: int, out_ch: int, residual: bool = False, kernel: Pair = (3, 3),
                 stride: Pair = (2, 2), padding: Pair = (1, 1), inner: int = 1) -> None:
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_ch, inner),
            ConvBlock(inner, inner, kernel, stride, padding, groups=inner),
            LinearBlock(inner, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class Residual(nn.Module):
    """``num_block`` residual stride-1 DepthWise blocks."""

    def __init__(self, ch: int, num_block: int, inner: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(ch, ch, True, (3, 3), (1, 1), (1, 1), inner) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise convolution head: 7x7 depthwise -> flatten -> linear -> BatchNorm1d."""

    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, kernel=(7, 7), groups=512),
            nn.Flatten(),
            nn.Linear(512, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet backbone: 112x112 crop -> ``num_features``-d embedding (not normalised)."""

    def __init__(self, *, num_features: int = 512, blocks: Sequence[int] = (1, 4, 6, 2), scale: int = 2) -> None:
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBlock(3, c1, (3, 3), (2, 2), (1, 1))])
        if blocks[0] == 1:
            self.layers.append(ConvBlock(c1, c1, (3, 3), (1, 1), (1, 1), groups=64))
        else:
            self.layers.append(Residual(c1, blocks[0], inner=128))
        self.layers.extend([
            DepthWise(c1, c1, inner=128),
            Residual(c1, blocks[1], inner=128),
            DepthWise(c1, c2, inner=256),
            Residual(c2, blocks[2], inner=256),
            DepthWise(c2, c2, inner=512),
            Residual(c2, blocks[3], inner=256),
        ])
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDC(num_features)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


def mobilefacenet(**kwargs) -> MobileFaceNet:
    """arcface_torch ``mbf``: blocks (1, 4, 6, 2), scale 2."""
    kwargs.setdefault("blocks", (1, 4, 6, 2))
    kwargs.setdefault("scale", 2)
    return MobileFaceNet(**kwargs)


def mobilefacenet_large(**kwargs) -> MobileFaceNet:
    """arcface_torch ``mbf_large``: blocks (2, 8, 12, 4), scale 4."""
    kwargs.setdefault("blocks", (2, 8, 12, 4))
    kwargs.setdefault("scale", 4)
    return MobileFaceNet(**kwargs)
