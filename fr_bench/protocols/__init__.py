"""Protocol registry: ``list_protocols()``, ``load_spec(name)``, ``load_protocol(name, root, **options)``.

Each protocol is declared by one TOML file in the top-level ``protocols/`` folder. Its ``loader`` key names the
factory (``"module:function"``) that builds the :class:`~fr_bench.protocols.base.Protocol` from the files under
``root``; the factory receives the parsed spec, so counts, FAR lists and known hashes live in one place.
"""

from __future__ import annotations

import importlib
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from fr_bench._paths import specs_dir
from fr_bench.protocols.base import (
    ImageRef,
    ImageSource,
    Protocol,
    ProtocolError,
    ProtocolResult,
)
from fr_bench.protocols.options import check_options

__all__ = [
    "ImageRef",
    "ImageSource",
    "Protocol",
    "ProtocolError",
    "ProtocolResult",
    "list_protocols",
    "load_protocol",
    "load_spec",
]


@lru_cache(maxsize=None)
def _spec_files() -> dict[str, Path]:
    files = {}
    for path in sorted(specs_dir().glob("*.toml")):
        files[path.stem] = path
    return files


def list_protocols() -> list[str]:
    """Names of every declared protocol, sorted."""
    return sorted(_spec_files())


def load_spec(name: str) -> dict[str, Any]:
    """The parsed TOML spec of protocol ``name`` (with ``name`` and ``spec_file`` filled in)."""
    files = _spec_files()
    if name not in files:
        raise KeyError(f"unknown protocol {name!r}; known protocols: {', '.join(sorted(files))}")
    path = files[name]
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path}: invalid TOML: {exc}") from exc
    spec.setdefault("name", name)
    spec["spec_file"] = str(path)
    if "loader" not in spec:
        raise ProtocolError(f"{path}: missing the 'loader' key (\"module:function\")")
    return spec


def _resolve(target: str):
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ProtocolError(f"loader {target!r} must be written 'module:function'")
    return getattr(importlib.import_module(module_name), attr)


def load_protocol(name: str, root: str | Path | None = None, **options: Any) -> Protocol:
    """Build protocol ``name`` over the benchmark files in ``root`` (``demo`` needs no root).

    ``options`` are protocol-specific (e.g. ``allow_missing=True``, ``distractors=10000``); an unknown key raises a
    :class:`ProtocolError` listing the loader's valid keys (:func:`fr_bench.protocols.options.check_options`).
    """
    spec = load_spec(name)
    factory = _resolve(spec["loader"])
    check_options(name, factory, options)
    return factory(root, spec, **options)
