"""The head registry: ``register_head``, ``build_head``, ``list_heads``, ``head_defaults`` (mirrors the backbones').

A head factory is a callable ``factory(embedding_size, num_classes, **params) -> Head`` whose keyword parameters
(with their defaults) are the head's public hyper-parameters. ``build_head`` checks the given ``params`` against
that signature first, so a misspelt recipe key fails with a message listing the valid ones, before anything is
built. Wrapper heads (UNPG, IR-Softmax) take ``base=`` and pass the remaining keywords on to the base head's
factory, which checks them in turn (:func:`check_params` with ``extra``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

HeadFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, HeadFactory] = {}
_FIXED = ("embedding_size", "num_classes")


class HeadConfigError(ValueError):
    """An unknown head name or an unknown / invalid head parameter (the message lists the valid choices)."""


def register_head(name: str, factory: HeadFactory, *, overwrite: bool = False) -> None:
    """Make ``build_head(name, embedding_size=D, num_classes=C, **params)`` call ``factory(D, C, **params)``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"head {name!r} is already registered")
    _REGISTRY[name] = factory


def list_heads() -> list[str]:
    """Names of every registered head, sorted."""
    return sorted(_REGISTRY)


def _factory(name: str) -> HeadFactory:
    if name not in _REGISTRY:
        raise HeadConfigError(f"unknown head {name!r}; known heads: {', '.join(list_heads())}")
    return _REGISTRY[name]


def head_defaults(name: str) -> dict[str, Any]:
    """The hyper-parameters of head ``name`` and their defaults (what a recipe may set), in signature order."""
    sig = inspect.signature(_factory(name))
    return {p.name: p.default for p in sig.parameters.values()
            if p.name not in _FIXED and p.kind is p.KEYWORD_ONLY}


def check_params(name: str, params: Mapping[str, Any], *, extra: Iterable[str] = ()) -> None:
    """Raise :class:`HeadConfigError` naming every key of ``params`` that head ``name`` does not accept.

    ``extra`` lists the names a wrapper accepts on top of the head's own (shown in the message too).
    """
    valid = list(head_defaults(name)) + [e for e in extra if e not in head_defaults(name)]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise HeadConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for head {name!r}; "
            f"valid parameters: {', '.join(valid) if valid else '(none)'}")


def build_head(name: str, *, embedding_size: int, num_classes: int, **params: Any) -> nn.Module:
    """A freshly initialised head ``name`` for ``embedding_size``-d embeddings and ``num_classes`` classes.

    ``head(embeddings, labels)`` is the scalar training loss (batch mean, regularisers included);
    ``head.logits(embeddings, labels)`` the scaled logits entering the cross-entropy; ``head.weight`` the (C, D)
    class weights. Unknown names and parameters raise :class:`HeadConfigError` listing the valid ones.
    """
    factory = _factory(name)
    sig = inspect.signature(factory)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not takes_any:
        check_params(name, params)
    if int(embedding_size) <= 0 or int(num_classes) <= 0:
        raise HeadConfigError(f"head {name!r}: embedding_size and num_classes must be positive, "
                              f"got {embedding_size} and {num_classes}")
    head = factory(int(embedding_size), int(num_classes), **params)
    head.head_name = name
    head.head_params = {**head_defaults(name), **params}  # what a checkpoint's meta can record
    return head
