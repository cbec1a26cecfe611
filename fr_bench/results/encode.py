"""The one JSON encoder of result files: numbers, arrays and dataclasses as plain JSON values, and back.

NaN and inf become ``null`` (strict JSON, readable by any tool); :func:`nan_leaves` turns ``null`` leaves back into
NaN where a number is expected (operating points, intervals). :mod:`fr_bench.metrics` keeps its own ``to_dict``
(metrics import nothing of ours); everything the results layer writes goes through :func:`to_jsonable`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses and mappings as dicts (keys as strings), arrays and tuples as
    lists, numpy scalars as Python numbers, NaN/inf as None, paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def nan_leaves(value: Any) -> Any:
    """``None`` leaves back to NaN (for the numeric dicts of a result: operating points, intervals)."""
    if value is None:
        return math.nan
    if isinstance(value, Mapping):
        return {k: nan_leaves(v) for k, v in value.items()}
    return value
