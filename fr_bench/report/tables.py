"""Comparison and convention tables (pandas), and the one import point of the report tables.

:mod:`fr_bench.report.leaderboard` builds the leaderboard, :mod:`fr_bench.report.render` formats cells and renders
any table as Markdown, CSV, LaTeX or HTML; both are re-exported here. This module formats stored numbers only: it
computes no metric and imports no models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from fr_bench.report.leaderboard import (
    HEADLINE_COLUMNS,
    headline_columns,
    leaderboard,
    leaderboard_values,
    write_leaderboard,
)
from fr_bench.report.render import FORMAT_EXTENSIONS, as_number, csv_cell, format_value, md_escape, render

__all__ = [
    "FORMAT_EXTENSIONS",
    "HEADLINE_COLUMNS",
    "comparison_table",
    "conventions_table",
    "csv_cell",
    "format_comparison",
    "format_value",
    "headline_columns",
    "leaderboard",
    "leaderboard_values",
    "md_escape",
    "render",
    "write_leaderboard",
]


# --------------------------------------------------------------------------------------------------------------------
# Comparison of two models, conventions side by side
# --------------------------------------------------------------------------------------------------------------------


def _format_p(p: Any) -> str:
    v = as_number(p)
    if math.isnan(v):
        return ""
    if v < 1e-4:
        return "<0.0001"
    return f"{v:.4f}" if v < 0.01 else f"{v:.3f}"


def comparison_table(rows: Sequence[Mapping[str, Any]], model_a: str = "A", model_b: str = "B",
                     decimals: int = 2) -> pd.DataFrame:
    """Headline numbers of two models and their paired difference, one row per metric.

    Each row: ``{"metric": label, "a": value, "b": value, "diff": b - a (computed if absent), "low", "high":
    interval of the difference, "level": e.g. 0.95, "p_value": McNemar (or other paired test) p, "test": its name,
    "scale": 100 (default) , "n": pairs}``. Values are fractions scaled by ``scale``. The frame's footnotes say
    what the columns mean.
    """
    out: dict[str, list[str]] = {model_a: [], model_b: [], f"Δ ({model_b} − {model_a})": [], "interval": [], "p": []}
    labels, tests, levels = [], set(), set()
    for row in rows:
        scale = float(row.get("scale", 100.0))
        a, b = as_number(row.get("a")), as_number(row.get("b"))
        diff = as_number(row.get("diff", b - a))
        labels.append(str(row["metric"]) + (f" (n={row['n']})" if row.get("n") is not None else ""))
        out[model_a].append(format_value(a, scale, decimals=decimals))
        out[model_b].append(format_value(b, scale, decimals=decimals))
        out[f"Δ ({model_b} − {model_a})"].append("n/a" if math.isnan(diff) else f"{diff * scale:+.{decimals}f}")
        low, high = as_number(row.get("low")), as_number(row.get("high"))
        out["interval"].append("" if math.isnan(low) or math.isnan(high)
                               else f"[{low * scale:+.{decimals}f}, {high * scale:+.{decimals}f}]")
        out["p"].append(_format_p(row.get("p_value")))
        if row.get("test"):
            tests.add(str(row["test"]))
        if row.get("level") is not None:
            levels.add(f"{as_number(row['level']) * 100:g}%")
    df = pd.DataFrame(out, index=pd.Index(labels, name="metric"), dtype=object)
    notes = [f"Δ = {model_b} − {model_a}, percentage points for rates"]
    if levels:
        notes.append("interval: paired " + "/".join(sorted(levels)) + " confidence interval of Δ")
    if tests:
        notes.append("p: two-sided " + "/".join(sorted(tests)) + " test on the same pairs")
    df.attrs["footnotes"] = notes
    return df


def format_comparison(rows: Sequence[Mapping[str, Any]], model_a: str = "A", model_b: str = "B",
                      fmt: str = "md", decimals: int = 2) -> str:
    """:func:`comparison_table` rendered with :func:`render` (for ``frbench compare``)."""
    return render(comparison_table(rows, model_a, model_b, decimals), fmt)


def conventions_table(rows: Sequence[Mapping[str, Any]], decimals: int = 2) -> pd.DataFrame:
    """The same embeddings scored under every applicable convention, side by side.

    Each row: ``{"group": metric group, "convention": name, "metric": key, "value": fraction, "scale": 100,
    "far": realised FAR, "threshold": realised threshold, "default": bool, "note": str}`` (only ``group``,
    ``convention``, ``metric`` and ``value`` required). ``Δ vs default`` is each value minus that of the default
    convention's row of the same group and metric (the first such row when none is marked default).
    """
    reference: dict[tuple[str, str], float] = {}
    for row in rows:
        key = (str(row["group"]), str(row["metric"]))
        value = as_number(row["value"]) * float(row.get("scale", 100.0))
        if row.get("default"):
            reference[key] = value
        else:
            reference.setdefault(key, value)
    table: dict[str, list[str]] = {k: [] for k in ("group", "convention", "metric", "value", "Δ vs default",
                                                   "realised FAR", "threshold", "note")}
    for row in rows:
        scale = float(row.get("scale", 100.0))
        value = as_number(row["value"]) * scale
        ref = reference[(str(row["group"]), str(row["metric"]))]
        table["group"].append(str(row["group"]))
        table["convention"].append(str(row["convention"]) + (" (default)" if row.get("default") else ""))
        table["metric"].append(str(row["metric"]))
        table["value"].append("n/a" if math.isnan(value) else f"{value:.{decimals}f}")
        delta = value - ref
        table["Δ vs default"].append("" if math.isnan(delta) else f"{delta:+.{decimals}f}")
        far = as_number(row.get("far"))
        table["realised FAR"].append("" if math.isnan(far) else f"{far:.2e}")
        thr = as_number(row.get("threshold"))
        table["threshold"].append("" if math.isnan(thr) else f"{thr:.4f}")
        table["note"].append(str(row.get("note") or ""))
    df = pd.DataFrame(table, dtype=object)
    df.attrs["footnotes"] = ["value and Δ in percent (percentage points) for rates; Δ relative to the default "
                             "convention of the same metric"]
    return df
