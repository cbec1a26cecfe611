"""fr_bench's self-describing checkpoint: weights plus everything needed to rebuild and feed the model.

A checkpoint is one ``torch.save`` file holding a plain dict (loadable with ``torch.load(weights_only=True)``)::

    {
        "format": "fr_bench.checkpoint",
        "version": 1,
        "arch": "iresnet50",                 # a name from fr_bench.models.list_archs()
        "arch_kwargs": {"num_features": 512},
        "embedding_size": 512,
        "preprocessing": {"input_size": [112, 112], "channel_order": "RGB",
                          "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5],
                          "resize": "bilinear-antialias"},  # how crops of another size become input
        "state_dict": {...},                 # the backbone's weights only (no head, no optimizer)
        "meta": {...},                       # free-form: recipe, loss, epoch, dataset (JSON-like values)
    }

Training recipes write it with :func:`save_checkpoint`; ``load_model(path)`` reads it without any flag.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fr_bench.models.preprocess import Preprocessing

CHECKPOINT_FORMAT = "fr_bench.checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    module_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    arch: str,
    arch_kwargs: Mapping[str, Any] | None = None,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    *,
    embedding_size: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically (temporary file, then rename) and return its path.

    ``preprocessing`` defaults to the arcface_torch convention (RGB, mean 127.5, std 127.5, 112x112).
    ``embedding_size`` defaults to the output width of the module (a probe forward) or of the last 1-d weight.
    """
    if isinstance(module_or_state, nn.Module):
        state = module_or_state.state_dict()
    else:
        state = dict(module_or_state)
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    if preprocessing is None:
        prep = Preprocessing(source="checkpoint")
    elif isinstance(preprocessing, Preprocessing):
        prep = preprocessing
    else:
        prep = Preprocessing.from_dict(preprocessing)
    if embedding_size is None:
        embedding_size = _output_width(arch, dict(arch_kwargs or {}), prep.input_size)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "embedding_size": int(embedding_size),
        "preprocessing": prep.contract_key(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    return atomic_torch_save(payload, Path(path))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _output_width(arch: str, arch_kwargs: dict[str, Any], size: tuple[int, int]) -> int:
    """Output width of ``arch``, from a forward pass on the meta device (shapes only, no compute)."""
    from fr_bench.models.backbones import create_backbone

    try:
        with torch.device("meta"):
            model = create_backbone(arch, **arch_kwargs).eval()
            return int(model(torch.zeros(2, 3, *size)).shape[1])
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: run it for real
        model = create_backbone(arch, **arch_kwargs).eval()
        with torch.inference_mode():
            return int(model(torch.zeros(2, 3, *size)).shape[1])


def is_checkpoint(obj: Any) -> bool:
    """True when ``obj`` (a loaded file) is an fr_bench checkpoint of any version."""
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def validate_checkpoint(obj: Mapping[str, Any], path: str) -> None:
    """Raise ValueError naming ``path`` when a checkpoint dict lacks a field or has an unknown version."""
    if obj.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: fr_bench checkpoint version {obj.get('version')!r}; this fr_bench reads version "
            f"{CHECKPOINT_VERSION}"
        )
    missing = [k for k in ("arch", "arch_kwargs", "preprocessing", "state_dict") if k not in obj]
    if missing:
        raise ValueError(f"{path}: fr_bench checkpoint without field(s) {', '.join(missing)}")
