"""Embedders backed by a ``torch.nn.Module`` (TorchScript, our checkpoints, plain state dicts, Python callables)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from fr_bench.models.base import Embedder, ModelLoadError, amp_dtype, model_fingerprint
from fr_bench.models.preprocess import Preprocessing, to_model_input


class TorchEmbedder(Embedder):
    """A module in eval mode on ``device`` (channels-last), fed preprocessed float NCHW batches."""

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        format: str,
        content_sha256: str,
        prep: Preprocessing,
        device: str | torch.device = "cpu",
        embedding_size: int | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"model {name}: device {device!r} asked for but CUDA is not available")
        self.module = module.eval().to(self.device)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.name = name
        self.format = format
        self.prep = prep
        self.content_sha256 = content_sha256
        self.fingerprint = model_fingerprint(content_sha256, prep)
        self.notes = list(notes or [])
        probed = self._probe()
        if embedding_size is not None and int(embedding_size) != probed:
            raise ModelLoadError(f"model {name}: embedding_size={embedding_size} given but the model outputs {probed}")
        self.embedding_size = probed

    def _probe(self) -> int:
        h, w = self.prep.input_size
        blank = torch.full((2, h, w, 3), 128, dtype=torch.uint8, device=self.device)
        try:
            out = self._forward(blank, "RGB", False)
        except Exception as exc:  # the model's own error, with the input contract it was given
            raise ModelLoadError(
                f"model {self.name}: a test forward pass on a (2, 3, {h}, {w}) float batch failed: {exc}"
            ) from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelLoadError(f"model {self.name}: expected (N, D) features, got {shape}")
        return int(out.shape[1])

    def _forward(self, batch: torch.Tensor, color_space: str, amp: bool | str) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        x = to_model_input(batch, self.prep, color_space=color_space, channels_last=self.channels_last)
        dtype = amp_dtype(amp) if self.device.type == "cuda" else None
        ctx = torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            out = self.module(x)
        if isinstance(out, (tuple, list)):  # e.g. (embedding, norm) heads: the first item is the embedding
            out = out[0]
        return out.float()
