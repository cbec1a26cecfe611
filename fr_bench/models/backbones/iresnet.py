"""Improved ResNets (IResNet) as trained by insightface's arcface_torch, with its exact parameter names.

The architecture (Duta et al. 2020, "Improved Residual Networks", as used by ArcFace) takes a 112x112 crop, runs a
3x3 stem (``conv1``, ``bn1``, ``prelu``), four stages ``layer1``..``layer4`` of pre-activation basic blocks that
each halve the resolution (64, 128, 256, 512 channels), then ``bn2`` -> flatten (512x7x7) -> ``dropout`` -> ``fc``
-> ``features`` (BatchNorm1d). A block is ``bn1 -> conv1 -> bn2 -> prelu -> conv2 (stride) -> bn3`` plus the
identity, or ``downsample.0`` (1x1 conv, stride) / ``downsample.1`` (BN) when the shape changes.

Because every name and shape matches arcface_torch's ``backbones/iresnet.py``, the widely shared ``backbone.pth``
files (ms1mv3_arcface_r50, glint360k_cosface_r100, ...) load with ``load_state_dict(strict=True)``. Depths:

========== ===================
name       blocks per stage
========== ===================
iresnet18  2, 2, 2, 2
iresnet34  3, 4, 6, 3
iresnet50  3, 4, 14, 3
iresnet100 3, 13, 30, 3
iresnet200 6, 26, 60, 6
========== ===================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STAGE_BLOCKS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}
STAGE_WIDTHS = (64, 128, 256, 512)


class IBasicBlock(nn.Module):
    """Pre-activation residual block; ``conv2`` carries the stride."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=1e-5)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.prelu = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch, eps=1e-5),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """IResNet backbone: 112x112 RGB crop -> ``num_features``-d embedding (not normalised)."""

    def __init__(
        self,
        blocks: Sequence[int],
        *,
        num_features: int = 512,
        dropout: float = 0.0,
        input_size: int = 112,
    ) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 (four stride-2 stages), got {input_size}")
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        in_ch = 64
        for stage, (n_blocks, width) in enumerate(zip(blocks, STAGE_WIDTHS), start=1):
            stage_blocks = [IBasicBlock(in_ch, width, stride=2)]
            stage_blocks += [IBasicBlock(width, width) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*stage_blocks))
            in_ch = width
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        side = input_size // 16
        self.fc = nn.Linear(512 * side * side, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        self._init_weights()

    def _init_weights(self) -> None:
        # Same scheme as arcface_torch: N(0, 0.1) convs, unit BN, and a frozen unit scale on the final BatchNorm1d.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        x = self.fc(self.dropout(x))
        return self.features(x)


def _factory(name: str):
    def build(**kwargs) -> IResNet:
        return IResNet(STAGE_BLOCKS[name], **kwargs)

    build.__name__ = name
    build.__doc__ = f"{name}: IResNet with {STAGE_BLOCKS[name]} blocks per stage (arcface_torch names)."
    return build


iresnet18 = _factory("iresnet18")
iresnet34 = _factory("iresnet34")
iresnet50 = _factory("iresnet50")
iresnet100 = _factory("iresnet100")
iresnet200 = _factory("iresnet200")
