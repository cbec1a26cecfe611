"""The input contract between aligned crops and a model: size, channel order, ``(x - mean) / std``.

Every protocol delivers aligned ``112 x 112 x 3`` ``uint8`` crops (RGB unless its ``color_space`` says otherwise).
A model expects a float NCHW tensor in *its* channel order, shifted and scaled by *its* constants. Getting this
wrong silently costs accuracy without any error, so the contract is never guessed silently: every embedder records
it as a :class:`Preprocessing` whose ``source`` says where each value came from (a model card, the checkpoint, the
convention of a file format, or a user flag) and whose ``assumed`` is true when nothing vouched for it.

``mean`` and ``std`` hold one value per input channel, in the model's channel order, applied to raw 0..255 values:
``input = (pixel - mean) / std``. The insightface arcface_torch convention ``x / 255 - 0.5) / 0.5`` is
``mean = std = 127.5``; a model that normalises inside its graph (SFace) takes ``mean = 0, std = 1``.

Crops whose size differs from ``input_size`` (a model trained on 64x64 images, fed the 112x112 aligned crops every
protocol delivers) are resized to it by :func:`resize_images`, the one resize of the package, used by evaluation
(:func:`to_model_input`) and by training (``fr_bench.train.data.make_transform`` goes through the same function):
bilinear with antialiasing, ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
antialias=True)`` on float32 values (Pillow's ``BILINEAR`` resampling, which widens its filter when reducing). The
method is part of the contract (``resize``), so results and the embedding cache's identity record it. Resizing
before or after ``(x - mean) / std`` is the same map (the filter weights sum to one): it is applied to the pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

CHANNEL_ORDERS = ("RGB", "BGR")
#: How crops of another size than ``input_size`` become model input (see the module docstring).
RESIZE_METHOD = "bilinear-antialias"
RESIZE_METHODS = (RESIZE_METHOD,)


def _numbers(value: Any, what: str, cast: type, counts: tuple[int, ...]) -> tuple:
    """``value`` (a number, a sequence, or text such as "127.5" / "127.5,127.5,127.5" / "112x112") as a tuple of
    ``cast`` numbers of one of the ``counts`` lengths; a ValueError naming ``what`` and the value otherwise."""
    if isinstance(value, str):
        items: Sequence[Any] = [v for v in value.replace("x", ",").replace(" ", ",").split(",") if v]
    elif isinstance(value, (int, float)):
        items = [value]
    else:
        try:
            items = list(value)
        except TypeError:
            items = [value]
    try:
        numbers = tuple(cast(float(v)) if cast is int else cast(v) for v in items)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) not in counts or (cast is int and any(float(v) != int(float(v)) for v in items)):
        shape = " or ".join({1: "one number", 2: "two (height, width)", 3: "three (one per channel)"}[c]
                            for c in counts)
        raise ValueError(f"{what} must be {shape}, got {value!r}")
    return numbers


def _triple(value: float | Sequence[float] | str, what: str) -> tuple[float, float, float]:
    values = _numbers(value, what, float, (1, 3))
    return values * 3 if len(values) == 1 else values  # type: ignore[return-value]


def _size(value: int | Sequence[int] | str) -> tuple[int, int]:
    values = _numbers(value, "input_size", int, (1, 2))
    if min(values) < 1:
        raise ValueError(f"input_size must be positive, got {value!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])  # type: ignore[return-value]


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 crops become model input. ``input_size`` is ``(height, width)``."""

    input_size: tuple[int, int] = (112, 112)
    channel_order: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    source: str = "default"
    assumed: bool = False
    resize: str = RESIZE_METHOD

    def __post_init__(self) -> None:
        order = str(self.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        object.__setattr__(self, "channel_order", order)
        object.__setattr__(self, "input_size", _size(self.input_size))
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        object.__setattr__(self, "std", _triple(self.std, "std"))
        if any(s == 0 for s in self.std):
            raise ValueError(f"std must be non-zero, got {self.std}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists, not tuples), as stored in results and checkpoints."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Preprocessing:
        known = {k: data[k] for k in ("input_size", "channel_order", "mean", "std", "source", "assumed",
                                                     "resize") if k in data}
        if source is not None:
            known["source"] = source
        return cls(**known)

    def contract_key(self) -> dict[str, Any]:
        """The values that change model input (not where they came from): what fingerprints hash."""
        return {
            "input_size": list(self.input_size),
            "channel_order": self.channel_order,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
        }


def with_overrides(
    default: Preprocessing,
    *,
    channel_order: str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    input_size: int | Sequence[int] | None = None,
) -> Preprocessing:
    """``default`` with the user's flags applied; ``source`` names which values the user set."""
    given = {
        k: v
        for k, v in {"channel_order": channel_order, "mean": mean, "std": std, "input_size": input_size}.items()
        if v is not None
    }
    if not given:
        return default
    all_given = len(given) == 4
    source = "user flag" if all_given else f"user flag ({', '.join(given)}); rest: {default.source}"
    assumed = False if all_given else default.assumed
    return replace(default, **given, source=source, assumed=assumed)


def resize_images(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Float NCHW images resized to ``size`` = (height, width) by the contract's method (bilinear, antialiased:
    ``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False, antialias=True)``).

    Computed in float32 (whatever ``x``'s floating dtype; integer input is converted) and returned in float32.
    ``x`` itself comes back when it is already that size."""
    size = _size(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_uint8(batch: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 images resized to ``size`` by :func:`resize_images`, rounded back to uint8 (for code
    that stores resized images, e.g. the synthetic protocol's crops). ``batch`` itself when already that size."""
    size = _size(size)
    if tuple(batch.shape[1:3]) == size:
        return batch
    x = resize_images(batch.permute(0, 3, 1, 2), size)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def to_model_input(
    batch: torch.Tensor,
    prep: Preprocessing,
    *,
    color_space: str = "RGB",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
) -> torch.Tensor:
    """``uint8`` NHWC crops in ``color_space`` -> float NCHW model input (same device as ``batch``).

    Crops of another size than ``prep.input_size`` are resized to it (:func:`resize_images`, the contract's
    ``resize`` method); channels are swapped when the model's order differs from ``color_space``; then
    ``(x - mean) / std``. Returns a channels-last tensor unless ``channels_last`` is false.
    """
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected a uint8 batch of shape (N, H, W, 3), got {tuple(batch.shape)}")
    space = color_space.upper()
    if space not in CHANNEL_ORDERS:
        raise ValueError(f"unknown colour space {color_space!r}; expected one of {CHANNEL_ORDERS}")
    x = batch.permute(0, 3, 1, 2)
    if space != prep.channel_order:
        x = x.flip(1)
    if tuple(x.shape[-2:]) != prep.input_size:
        x = resize_images(x, prep.input_size)
    x = x.to(dtype)
    mean = torch.tensor(prep.mean, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.contiguous()
    return x
