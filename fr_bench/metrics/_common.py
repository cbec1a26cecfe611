"""One implementation of each small idea the metric modules share: the exact ``floor(rate * n)`` budget, dense id
codes, contiguous folds and the numpy-to-JSON conversion of result records."""

from __future__ import annotations

import math
from dataclasses import fields
from fractions import Fraction
from typing import Any

import numpy as np


def resolve_convention(convention: str, known: Any, aliases: dict[str, str], what: str) -> str:
    """The canonical name of ``convention`` among ``known`` (``aliases`` resolved); ``ValueError`` naming the choices."""
    name = aliases.get(convention, convention)
    if name not in known:
        raise ValueError(f"unknown {what} convention {convention!r}; expected one of {sorted(known) + sorted(aliases)}")
    return name


def rate_fraction(rate: float) -> Fraction:
    """The rate as the decimal it prints as (``1e-3`` -> 1/1000 exactly, not its binary float)."""
    return Fraction(repr(float(rate)))


def allowed_count(rate: float, n: Any) -> Any:
    """``floor(rate * n)`` in exact arithmetic, with ``rate`` read as the decimal it prints as (``0.29 * 100`` allows
    29, not 28; ``1e-3 * 300000`` allows 300). ``n``: an integer, or an integer numpy array (then elementwise,
    int64). The one budget of every "at most this many false accepts / alarms" reading."""
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"a rate must lie in [0, 1], got {rate}")
    frac = rate_fraction(rate)
    if isinstance(n, np.ndarray):
        if not np.issubdtype(n.dtype, np.integer):
            raise ValueError(f"allowed_count needs integer counts, got dtype {n.dtype}")
        return (n.astype(np.int64) * frac.numerator) // frac.denominator
    return int(math.floor(frac * int(n)))


def dense_codes(*arrays: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(values, codes)``: the sorted distinct values of all ``arrays`` together and, per array, the int64 code of
    each entry (its index in ``values``), one shared vocabulary (ids may be ints or strings). Non-negative integer
    ids below 2**24 take a counting path (no sort)."""
    flat = [np.asarray(a).reshape(-1) for a in arrays]
    if flat and all(np.issubdtype(a.dtype, np.integer) for a in flat) and sum(a.size for a in flat):
        lo = min(int(a.min()) for a in flat if a.size)
        hi = max(int(a.max()) for a in flat if a.size)
        if lo >= 0 and hi < (1 << 24):
            present = np.zeros(hi + 1, dtype=bool)
            for a in flat:
                present[a] = True
            code = np.cumsum(present) - 1
            return np.flatnonzero(present), [code[a].astype(np.int64) for a in flat]
    values, inverse = np.unique(np.concatenate(flat) if flat else np.empty(0), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    bounds = np.cumsum([0] + [a.size for a in flat])
    return values, [inverse[bounds[i]:bounds[i + 1]] for i in range(len(flat))]


def contiguous_folds(n: int, n_folds: int) -> np.ndarray:
    """Fold boundaries ``[0, ..., n]`` of ``n_folds`` contiguous blocks in the given order, sizes as
    ``numpy.array_split`` / scikit-learn ``KFold(shuffle=False)`` (the first ``n % n_folds`` folds hold one more)."""
    if not isinstance(n_folds, (int, np.integer)) or isinstance(n_folds, bool) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if n < n_folds:
        raise ValueError(f"cannot split {n} pairs into {n_folds} folds")
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def json_value(v: Any) -> Any:
    """JSON-ready value: NaN and +-inf -> None, numpy scalars/arrays -> Python floats/ints/lists, float dict keys ->
    strings like ``'1e-06'``, records with ``to_dict`` -> their dict."""
    if isinstance(v, np.ndarray):
        return [json_value(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, dict):
        return {(format(k, "g") if isinstance(k, float) else str(k)): json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return v


class ToDict:
    """Mixin for result dataclasses: ``to_dict()`` through :func:`json_value`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf -> None, float dict keys -> strings like '1e-06')."""
        return {f.name: json_value(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]
