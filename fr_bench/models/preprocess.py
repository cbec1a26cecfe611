"""The input contract between aligned crops and a model: size, channel order, ``(x - mean) / std``.

Every protocol delivers aligned ``112 x 112 x 3`` ``uint8`` crops (RGB unless its ``color_space`` says otherwise).
A model expects a float NCHW tensor in *its* channel order, shifted and scaled by *its* constants. Getting this
wrong silently costs accuracy without any error, so the contract is never guessed silently: every embedder records
it as a :class:`Preprocessing` whose ``source`` says where each value came from (a model card, the checkpoint, the
convention of a file format, or a user flag) and whose ``assumed`` is true when nothing vouched for it.

``mean`` and ``std`` hold one value per input channel, in the model's channel order, applied to raw 0..255 values:
``input = (pixel - mean) / std``. The insightface arcface_torch convention ``x / 255 - 0.5) / 0.5`` is
``mean = std = 127.5``; a model that normalises inside its graph (SFace) takes ``mean = 0, std = 1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

CHANNEL_ORDERS = ("RGB", "BGR")


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists, not tuples), as stored in results and checkpoints."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Preprocessing:
        known = {k: data[k] for k in ("input_size", "channel_order", "mean", "std", "source", "assumed") if k in data}
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


def to_model_input(
    batch: torch.Tensor,
    prep: Preprocessing,
    *,
    color_space: str = "RGB",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
) -> torch.Tensor:
    """``uint8`` NHWC crops in ``color_space`` -> float NCHW model input (same device as ``batch``).

    Checks the crop size against ``prep.input_size`` (crops are never resized silently), swaps channels when the
    model's order differs from ``color_space``, applies ``(x - mean) / std`` and returns a channels-last tensor.
    """
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected a uint8 batch of shape (N, H, W, 3), got {tuple(batch.shape)}")
    if tuple(batch.shape[1:3]) != prep.input_size:
        raise ValueError(
            f"crops are {tuple(batch.shape[1:3])} but the model expects {prep.input_size} (height, width); "
            "fr_bench does not resize crops silently: align to the model's size or pass input_size"
        )
    space = color_space.upper()
    if space not in CHANNEL_ORDERS:
        raise ValueError(f"unknown colour space {color_space!r}; expected one of {CHANNEL_ORDERS}")
    x = batch.permute(0, 3, 1, 2)
    if space != prep.channel_order:
        x = x.flip(1)
    x = x.to(dtype)
    mean = torch.tensor(prep.mean, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.contiguous()
    return x
