"""Loader options as users type them (``-o KEY=VALUE`` gives strings): typed readers, and the check of the keys.

:func:`check_options` compares the keys a user passed with the loader's own keyword parameters, so an unknown key
is one line naming the protocol and listing the valid keys, for every loader, before the loader runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def as_bool(value: Any, name: str) -> bool:
    """An option value as a bool (accepts bools, 0/1 and the strings true/false/yes/no/1/0)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise ValueError(f"option {name}={value!r}: expected true or false")


def as_count(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """An option value as a non-negative int (strings of digits accepted; ``None``/"none" if ``allow_none``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "any", "")):
        if allow_none:
            return None
        raise ValueError(f"option {name} needs a number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name}={value!r}: expected a whole number") from None
    if isinstance(value, float) and value != number or number < 0:
        raise ValueError(f"option {name}={value!r}: expected a whole number >= 0")
    return number


class _FromSpec:
    """Sentinel default: take the value from the protocol spec."""

    def __repr__(self) -> str:
        return "<from spec>"


FROM_SPEC: Any = _FromSpec()


def expected_count(spec: Mapping[str, Any], value: Any, key: str = "pairs") -> int | None:
    """The pair count to enforce: the spec's ``[counts] <key>`` unless the option overrides it (None = no check)."""
    if value is FROM_SPEC:
        count = spec.get("counts", {}).get(key)
        return None if count is None else int(count)
    return as_count(value, f"expected_{key}", allow_none=True)


def option_keys(factory: Callable[..., Any]) -> list[str] | None:
    """The option keys a loader accepts: its keyword parameters after ``(root, spec)``; None when it takes
    ``**options`` (then it checks them itself)."""
    params = list(inspect.signature(factory).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in named]


def check_options(protocol: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise a one-line error (``ProtocolError``) naming ``protocol``, the unknown key(s) and the valid keys when
    ``options`` holds a key the loader does not take."""
    from fr_bench.protocols.base import ProtocolError

    keys = option_keys(factory)
    if keys is None:
        return
    unknown = [k for k in options if k not in keys]
    if unknown:
        valid = ", ".join(keys) if keys else "none (this protocol takes no options)"
        raise ProtocolError(f"{protocol}: unknown option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(repr(k) for k in unknown)}; valid keys: {valid}")
