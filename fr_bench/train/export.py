"""Building the recipe's network and writing it as a self-describing checkpoint that ``frbench evaluate`` reads.

The network is ``create_backbone(model.backbone, num_features=D, **model.backbone_kwargs)``, or, for heads that
need more than an embedding (GroupFace), ``create_backbone(head.model_wrapper, backbone=..., backbone_kwargs=...,
**head.model_kwargs)``. The checkpoint records that architecture and its arguments, the input contract used in
training (RGB, mean = std = 127.5, arcface_torch's ``(x / 255 - 0.5) / 0.5``), the recipe, head and git hash.

The network is saved bare, with its true input contract: a model trained on 64x64 images records
``input_size = [64, 64]``, and evaluation resizes the aligned 112x112 crops every protocol delivers to that size by
the contract's method (bilinear, antialiased: :func:`fr_bench.models.preprocess.resize_images`), the same function
the training transform goes through. The result's ``preprocessing`` shows the size and the method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from fr_bench.models import Preprocessing, create_backbone, save_checkpoint


def training_preprocessing(input_size: int, recipe_name: str) -> Preprocessing:
    """The input contract of training: ``input_size`` square, RGB, mean = std = 127.5."""
    return Preprocessing(input_size=(input_size, input_size), channel_order="RGB", mean=127.5, std=127.5,
                         source=f"fr_bench training recipe {recipe_name!r}")


def network_spec(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(arch, arch_kwargs)`` of the recipe's network (the backbone, or the head's wrapper around it)."""
    model, head = config["model"], config["head"]
    if head.get("model_wrapper"):  # the wrapper sizes the backbone's output itself (e.g. GroupFace's shared_dim)
        kwargs = {"backbone": model["backbone"], "backbone_kwargs": dict(model["backbone_kwargs"]),
                  "num_features": int(model["embedding_size"]), **dict(head.get("model_kwargs", {}))}
        return str(head["model_wrapper"]), kwargs
    return str(model["backbone"]), {"num_features": int(model["embedding_size"]), **dict(model["backbone_kwargs"])}


def build_network(config: Mapping[str, Any]) -> tuple[nn.Module, str, dict[str, Any]]:
    """The recipe's freshly initialised network with its ``(arch, arch_kwargs)``."""
    arch, kwargs = network_spec(config)
    try:
        return create_backbone(arch, **kwargs), arch, kwargs
    except KeyError as exc:
        raise KeyError(f"recipe key model.backbone / head.model_wrapper: {exc.args[0]}") from None


def for_evaluation(network: nn.Module, input_size: int) -> tuple[nn.Module, Preprocessing]:
    """``network`` as evaluation sees it once saved: the bare network and its training contract."""
    return network, training_preprocessing(input_size, "in training")


def write_checkpoint(model: nn.Module, path: Path, *, arch: str, arch_kwargs: Mapping[str, Any], input_size: int,
                     embedding_size: int, recipe_name: str, meta: Mapping[str, Any]) -> Path:
    """Save ``model`` (unwrapped) as an fr_bench checkpoint with its training input contract (see the module doc)."""
    prep = training_preprocessing(input_size, recipe_name)
    return save_checkpoint(model.state_dict(), path, arch, arch_kwargs, prep, embedding_size=embedding_size,
                           meta=dict(meta))
