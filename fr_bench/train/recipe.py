"""Training recipes: TOML files with single inheritance and typed ``key=value`` overrides.

A recipe is ``reference_models/recipes/<name>.toml`` (or any ``.toml`` path). ``inherit = "base"`` merges it over
``base.toml`` (tables merge key by key; any other value replaces). Every key a loss file sets must exist in the
recipe it inherits from, except inside the free-form tables listed in :data:`FREE_TABLES` (a head's parameters,
a backbone's constructor arguments, the data reader's options), so a misspelt key is an error naming the file and
the key instead of a silently ignored setting.

Overrides (from the command line) are ``dotted.key=value`` strings; the value is parsed as TOML when it can be
(``0.1``, ``true``, ``"x"``, ``[1, 2]``) and else taken as a bare string, then converted to the type of the value it
replaces (an int key stays an int: ``optim.epochs=2.5`` is an error). A key that does not exist is an error that
names the recipe file and the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fr_bench._paths import reference_models_dir

#: Tables whose keys are not fixed by base.toml (their content goes to a constructor that checks it).
FREE_TABLES = ("head.params", "head.model_kwargs", "model.backbone_kwargs", "data.options")

#: The loss recipes shipped in reference_models/recipes (base.toml is not one).
RECIPE_NAMES = ("softmax", "center", "sphereface", "cosface", "arcface", "magface", "unpg_cosface", "unpg_arcface",
                "unpg_magface", "groupface", "ir_sphereface", "ir_cosface")


class RecipeError(ValueError):
    """A recipe file or override that cannot be used; the message names the file and the key."""


@dataclass
class Recipe:
    """A resolved recipe: ``name``, the merged nested ``config`` dict, and the files it was read from."""

    name: str
    config: dict[str, Any]
    files: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)

    def get(self, dotted: str) -> Any:
        """The value at ``dotted`` (``"optim.lr"``); KeyError naming the recipe when it does not exist."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"recipe {self.name!r} has no key {dotted!r}")
            node = node[part]
        return node

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the recipe (stored in checkpoints and training state)."""
        return {"name": self.name, "config": copy.deepcopy(self.config), "files": list(self.files),
                "overrides": dict(self.overrides)}

    def digest(self) -> str:
        """sha256 of the resolved configuration (what a resumed run must match)."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()


def recipes_dir() -> Path:
    """The folder of the shipped recipes (``reference_models/recipes``)."""
    return reference_models_dir() / "recipes"


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped recipe name (``"arcface"``) or an explicit ``.toml`` path."""
    text = os.fspath(name_or_path)
    p = Path(text).expanduser()
    if p.suffix == ".toml" or os.sep in text or "/" in text:
        if not p.is_file():
            raise RecipeError(f"{p}: no such recipe file")
        return p
    cand = recipes_dir() / f"{text}.toml"
    if not cand.is_file():
        known = ", ".join(sorted(q.stem for q in recipes_dir().glob("*.toml")))
        raise RecipeError(f"unknown recipe {text!r} (no {cand}); known recipes: {known}")
    return cand


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from exc


def _is_free(dotted: str) -> bool:
    return any(dotted == t or dotted.startswith(t + ".") for t in FREE_TABLES)


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: Path, prefix: str = "") -> dict[str, Any]:
    """``over`` merged into a copy of ``base``; a key absent from ``base`` outside FREE_TABLES is an error."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if key not in out and not _is_free(dotted):
            raise RecipeError(f"{where}: unknown recipe key {dotted!r} (not in the recipe it inherits from)")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and not _is_free(dotted):
            out[key] = _merge(out[key], value, where, dotted + ".")
        elif isinstance(value, Mapping) and _is_free(dotted):
            out[key] = {**out.get(key, {}), **copy.deepcopy(dict(value))}
        else:
            if key in out and not _is_free(dotted):
                value = _convert(value, out[key], dotted, str(where))
            out[key] = copy.deepcopy(value)
    return out


def _resolve_file(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    path = path.resolve()
    if path in seen:
        raise RecipeError(f"{path}: inheritance cycle ({' -> '.join(str(p) for p in (*seen, path))})")
    data = _read_toml(path)
    parent = data.pop("inherit", None)
    if parent is None:
        return data, [str(path)]
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: 'inherit' must be a recipe name or path, got {parent!r}")
    parent_path = (path.parent / parent) if parent.endswith(".toml") else path.parent / f"{parent}.toml"
    if not parent_path.is_file():
        raise RecipeError(f"{path}: inherits {parent!r} but {parent_path} does not exist")
    base, files = _resolve_file(parent_path, (*seen, path))
    return _merge(base, data, path), [*files, str(path)]


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _convert(value: Any, old: Any, key: str, where: str) -> Any:
    """``value`` converted to the type of ``old`` (the value it replaces), or RecipeError."""
    if old is None or isinstance(old, (dict, list)) and isinstance(value, type(old)):
        return value
    if isinstance(old, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif isinstance(old, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(old, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(old, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise RecipeError(f"{where}: key {key!r} expects a {type(old).__name__} (like {old!r}), got {value!r}")


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["optim.lr=0.05", "head.params.s=32"]`` -> ``{"optim.lr": 0.05, "head.params.s": 32}`` (TOML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: expected dotted.key=value, e.g. optim.lr=0.05")
        out[key.strip()] = _parse_value(raw.strip())
    return out


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``config`` with ``{"dotted.key": value}`` set, each typed by the value it replaces."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise RecipeError(f"{where}: unknown recipe key {dotted!r} (no table {'.'.join(parts[:i + 1])!r})")
            node = node[part]
        last = parts[-1]
        if last not in node:
            if not _is_free(dotted):
                raise RecipeError(f"{where}: unknown recipe key {dotted!r}")
            node[last] = value
        else:
            node[last] = _convert(value, node[last], dotted, where)
    return out


def load_recipe(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | Iterable[str] | None = None
                ) -> Recipe:
    """Read a recipe with its inheritance chain and ``overrides`` (dict or ``key=value`` strings) applied."""
    path = recipe_path(name_or_path)
    config, files = _resolve_file(path)
    if overrides is None:
        over: dict[str, Any] = {}
    elif isinstance(overrides, Mapping):
        over = dict(overrides)
    else:
        over = parse_overrides(overrides)
    config = apply_overrides(config, over, str(path))
    return Recipe(name=path.stem, config=config, files=files, overrides=over)
