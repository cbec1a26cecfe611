"""The :class:`Embedder` every loader returns, its errors, and model fingerprints.

An embedder maps a batch of aligned ``uint8`` NHWC crops to raw (not normalised) float32 features, doing its own
preprocessing on its own device. The extractor only moves bytes, flips and batches; what the model needs lives here.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fr_bench.models.preprocess import Preprocessing


class ModelLoadError(ValueError):
    """A model file that cannot be loaded as asked; the message names the file and what was expected."""


class NonFiniteOutputError(RuntimeError):
    """The model produced NaN or inf features."""


class ModelOutputError(RuntimeError):
    """The model's output changed shape at run time (e.g. another feature width than at load)."""


#: Flip-test fusion conventions, by name: ``sum`` = f(x) + f(mirror x) (insightface), ``concat`` = [f(x), f(mirror
#: x)] along the feature axis (D -> 2D; UNPG's K-FACE evaluation), ``none`` = f(x) alone.
FLIP_MODES: tuple[str, ...] = ("sum", "concat", "none")


def flip_mode(flip: bool | str | None) -> str:
    """The flip convention named by ``flip``: a name of :data:`FLIP_MODES`, or True ("sum") / False, None ("none")."""
    if flip is None or flip is False:
        return "none"
    if flip is True:
        return "sum"
    name = str(flip).lower()
    if name not in FLIP_MODES:
        raise ValueError(f"unknown flip convention {flip!r}; choose one of {', '.join(FLIP_MODES)}")
    return name


#: (resolved path, size, mtime_ns) -> sha256 of the file bytes; hashing a 250 MB checkpoint once per process is enough.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, cached by path, size and modification time."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and values (for models that live in memory, not a file)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_fingerprint(content_sha256: str, prep: Preprocessing) -> str:
    """sha256 over the model's bytes hash and the input contract: changes when either changes."""
    payload = json.dumps({"model": content_sha256, "preprocessing": prep.contract_key()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def amp_dtype(amp: bool | str) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` setting: True/"bf16" -> bfloat16, "fp16" -> float16, False -> None."""
    if amp is False or amp is None:
        return None
    if amp is True or str(amp).lower() in ("bf16", "bfloat16"):
        return torch.bfloat16
    if str(amp).lower() in ("fp16", "float16", "half"):
        return torch.float16
    raise ValueError(f"amp must be True, False, 'bf16' or 'fp16', got {amp!r}")


class Embedder(ABC):
    """A loaded model with its input contract.

    Attributes: ``name``, ``format`` ("onnx", "torchscript", "fr_bench-checkpoint", "state_dict", "callable"),
    ``fingerprint`` (sha256 of the model bytes + the preprocessing contract), ``preprocessing`` (dict, see
    :class:`~fr_bench.models.preprocess.Preprocessing`), ``embedding_size``, ``device``, ``channel_order`` and
    ``input_device`` (where :meth:`embed` wants its input batch: the model's device for torch, CPU for ONNX).
    ``notes`` lists anything the loader did on the user's behalf (e.g. stripped a ``module.`` prefix).
    """

    name: str
    format: str
    fingerprint: str
    prep: Preprocessing
    embedding_size: int
    device: torch.device
    notes: list[str]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.prep.to_dict()

    @property
    def channel_order(self) -> str:
        return self.prep.channel_order

    @property
    def input_device(self) -> torch.device:
        return self.device

    @property
    def requested_device(self) -> torch.device:
        """The device the caller asked for (``device`` is where the model really runs; they differ after a fallback)."""
        return getattr(self, "_requested_device", None) or self.device

    def output_width(self, flip: bool | str = False) -> int:
        """Features per image that :meth:`embed` returns under ``flip`` (twice ``embedding_size`` for "concat")."""
        return self.embedding_size * (2 if flip_mode(flip) == "concat" else 1)

    @abstractmethod
    def _forward(self, batch: torch.Tensor, color_space: str, amp: bool | str) -> torch.Tensor:
        """Raw features (N, D) float32 of ``uint8`` NHWC ``batch`` (no flip, no finiteness check)."""

    def embed(
        self,
        batch: torch.Tensor | np.ndarray,
        *,
        color_space: str = "RGB",
        flip: bool | str = False,
        amp: bool | str = False,
        check_finite: bool = True,
    ) -> torch.Tensor:
        """Features of ``uint8`` NHWC crops, fused with the mirror images' by the ``flip`` convention.

        ``flip`` (see :func:`flip_mode`): "sum" gives ``f(x) + f(mirror(x))``, "concat" ``[f(x), f(mirror(x))]``
        (2D features), "none" (or False) ``f(x)``. The mirrored copies are made on the input device (``torch.flip``
        along the width) and concatenated to the batch, so each image costs one forward of a batch twice as large.
        ``amp`` autocasts on CUDA only. Raises :class:`NonFiniteOutputError` naming the model when any feature is
        NaN or inf (unless ``check_finite`` is False: the caller then handles such rows) and
        :class:`ModelOutputError` when the feature width differs from ``embedding_size`` (measured at load).
        """
        mode = flip_mode(flip)
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if batch.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 batch of crops, got {batch.dtype}")
        n = batch.shape[0]
        if mode != "none":
            batch = torch.cat([batch, batch.flip(2)], dim=0)
        out = self._forward(batch, color_space, amp).float()
        if out.ndim != 2 or out.shape[0] != batch.shape[0]:
            raise ModelOutputError(
                f"model {self.name}: expected features of shape ({batch.shape[0]}, D), got {tuple(out.shape)}"
            )
        width = getattr(self, "embedding_size", None)
        if width is not None and out.shape[1] != width:
            raise ModelOutputError(
                f"model {self.name}: output width changed: {out.shape[1]} features per image, "
                f"{width} when the model was loaded"
            )
        if check_finite and not bool(torch.isfinite(out).all()):
            bad = (~torch.isfinite(out)).any(dim=1).nonzero().flatten() % n
            raise NonFiniteOutputError(
                f"model {self.name} produced NaN/inf features for {bad.unique().numel()} of {n} images "
                f"(first at batch row {int(bad.min())})"
            )
        if mode == "sum":
            out = out[:n] + out[n:]
        elif mode == "concat":
            out = torch.cat([out[:n], out[n:]], dim=1)
        return out

    def __call__(self, batch: torch.Tensor | np.ndarray, color_space: str = "RGB") -> torch.Tensor:
        """Raw features (N, D) float32 of ``uint8`` NHWC crops in ``color_space`` (RGB by the protocol contract)."""
        return self.embed(batch, color_space=color_space)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: what results files record about the model."""
        return {
            "name": self.name,
            "format": self.format,
            "fingerprint": self.fingerprint,
            "preprocessing": self.preprocessing,
            "embedding_size": self.embedding_size,
            "device": str(self.device),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        p = self.prep
        return (
            f"{type(self).__name__}(name={self.name!r}, format={self.format!r}, D={self.embedding_size}, "
            f"device={self.device}, {p.channel_order} mean={p.mean} std={p.std} [{p.source}])"
        )
