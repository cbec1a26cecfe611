"""A small, timm-like registry of face-recognition backbones: ``list_archs()``, ``create_backbone(name, **kw)``.

Evaluation (plain state dicts given with ``arch=``) and training (``fr_bench.train``) build backbones from the same
registry, so a checkpoint written by a training recipe names an architecture that loading can rebuild. Register more
with :func:`register_arch`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fr_bench.models.backbones import groupface, iresnet, mobilefacenet, tinyface

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False) -> None:
    """Make ``create_backbone(name, **kw)`` call ``factory(**kw)``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"architecture {name!r} is already registered")
    _REGISTRY[name] = factory


def list_archs() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_REGISTRY)


def create_backbone(name: str, **kwargs) -> nn.Module:
    """A freshly initialised backbone ``name`` (keyword arguments go to its constructor, e.g. ``num_features``)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}")
    return _REGISTRY[name](**kwargs)


for _name in iresnet.STAGE_BLOCKS:
    register_arch(_name, getattr(iresnet, _name))
register_arch("mobilefacenet", mobilefacenet.mobilefacenet)
register_arch("mobilefacenet_large", mobilefacenet.mobilefacenet_large)
register_arch("groupface", groupface.groupface)  # any registered backbone + GroupFace's group-aware embedding
register_arch("tinyface", tinyface.tinyface)
# arcface_torch's own short names, so its config files' `network = "r50"` can be passed through unchanged.
for _alias, _target in {"r18": "iresnet18", "r34": "iresnet34", "r50": "iresnet50", "r100": "iresnet100",
                        "r200": "iresnet200", "mbf": "mobilefacenet", "mbf_large": "mobilefacenet_large"}.items():
    register_arch(_alias, _REGISTRY[_target])
