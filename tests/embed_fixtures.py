"""Shared test helpers for extraction: in-memory image sources and tiny torch models with a hand-written forward."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from fr_bench.models import load_model


@dataclass(frozen=True)
class Ref:
    key: str
    source: str
    member: int | None = None
    landmarks: tuple | None = None


class ArraySource:
    """The ImageSource interface over in-memory crops; ``fail`` maps index -> exception raised by ``load``."""

    def __init__(self, images: np.ndarray, prefix: str = "set", fail: dict[int, Exception] | None = None,
                 color_space: str = "RGB") -> None:
        self.images, self.prefix, self.fail, self.color_space = images, prefix, dict(fail or {}), color_space

    def __len__(self) -> int:
        return len(self.images)

    def ref(self, i: int) -> Ref:
        return Ref(key=f"{self.prefix}/person_{i % 3}/img_{i:04d}.jpg", source=f"/data/{self.prefix}/{i}.jpg")

    def load(self, i: int) -> np.ndarray:
        if i in self.fail:
            raise self.fail[i]
        return self.images[i]

    def keys(self) -> list[str]:
        return [self.ref(i).key for i in range(len(self))]


class JpegFileSource(ArraySource):
    """Crops stored as JPEG files and decoded with PIL on load (a corrupt file fails like a real one)."""

    def __init__(self, folder, images: np.ndarray) -> None:
        super().__init__(images, prefix="jpeg")
        self.files = []
        for i, img in enumerate(images):
            path = os.path.join(folder, f"{i:04d}.jpg")
            Image.fromarray(img).save(path, quality=95)
            self.files.append(path)

    def ref(self, i: int) -> Ref:
        return Ref(key=f"jpeg/{i:04d}.jpg", source=self.files[i])

    def load(self, i: int) -> np.ndarray:
        with Image.open(self.files[i]) as im:
            return np.asarray(im.convert("RGB"))


class TinyNet(nn.Module):
    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.fc = nn.Linear(4 * 28 * 28, dim)
        self.rows_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows_seen += x.shape[0]
        return self.fc(torch.flatten(self.conv(x), 1))


class ChangesFrom(TinyNet):
    """TinyNet whose output ``change`` alters from the ``start``-th forward call on (the load-time probe is call 1)."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.calls, self.start = 0, start

    def change(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().forward(x)
        return self.change(out) if self.calls >= self.start else out


class NaNAfter(ChangesFrom):
    """Finite outputs for the first ``k`` forward calls, then NaN."""

    def __init__(self, k: int) -> None:
        super().__init__(start=k + 1)

    def change(self, out: torch.Tensor) -> torch.Tensor:
        return out * float("nan")


def random_crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def tiny_embedder(**kw):
    emb = load_model(TinyNet(**kw), name="tiny")
    emb.module.rows_seen = 0
    return emb


def direct(net: nn.Module, imgs: np.ndarray) -> np.ndarray:
    """The net on the arcface-convention input, computed without fr_bench's preprocessing code."""
    x = torch.from_numpy(((imgs.astype(np.float64) - 127.5) / 127.5).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        return net(x).numpy()
