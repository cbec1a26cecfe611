"""The cross-model leaderboard (pandas): headline columns per protocol, honesty markers, footnotes.

The leaderboard has one row per model and, per protocol, the headline columns of the published tables
(:data:`HEADLINE_COLUMNS`). Cells read ``99.82 [99.71, 99.90]``: the number, then its confidence interval in
brackets when the result has one (brackets, not ``±``, because bootstrap intervals are not symmetric; ``±`` is
never used for a CI). Percentages are printed without the ``%`` sign; the column legend says which ones.

Honesty rules, each with a footnote under the table:

* ``†A``, ``†B``, ...: the models of one protocol were evaluated on *different data* (the provenance ``combined``
  hashes differ, or one is not recorded). Numbers of different groups must not be compared; the table is never
  ranked by such a column (:func:`leaderboard` refuses ``sort_by`` on it). Ranking happens only inside one group.
* ``§A``, ``§B``, ...: the models of one protocol were scored under different *conventions*: same rule.
* ``*1``, ``*2``, ...: the result carries flags (optimistic best-threshold accuracy, unresolvable FAR, skipped
  pairs, unknown data release...); the footnote quotes them.

When one protocol's results all share data and conventions, the conventions are stated once in a legend footnote.
This module formats stored numbers only: it computes no metric and imports no models.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fr_bench.metrics import names as metric_names
from fr_bench.report.render import FORMAT_EXTENSIONS, as_number, format_value, render
from fr_bench.results import StoredResult, atomic_write_text, load_results

__all__ = ["HEADLINE_COLUMNS", "headline_columns", "leaderboard", "leaderboard_values", "write_leaderboard"]

#: Protocol name -> its headline columns ``(metric key, column label, scale)``, in the order of the published
#: tables; ``scale`` 100 prints a fraction as a percentage. Protocols are matched ignoring case and punctuation
#: (``agedb_30`` = ``AgeDB-30``). A protocol not listed gets :func:`headline_columns`'s fallback.
HEADLINE_COLUMNS: dict[str, list[tuple[str, str, float]]] = {
    "lfw": [("accuracy", "LFW", 100.0)],
    "cfp_fp": [("accuracy", "CFP-FP", 100.0)],
    "cfp_ff": [("accuracy", "CFP-FF", 100.0)],
    "agedb_30": [("accuracy", "AgeDB-30", 100.0)],
    "calfw": [("accuracy", "CALFW", 100.0)],
    "cplfw": [("accuracy", "CPLFW", 100.0)],
    "vgg2_fp": [("accuracy", "VGG2-FP", 100.0)],
    "ijbb": [("tar@far=1e-4", "IJB-B TAR@1e-4", 100.0)],
    "ijbc": [
        ("tar@far=1e-6", "IJB-C TAR@1e-6", 100.0),
        ("tar@far=1e-5", "IJB-C TAR@1e-5", 100.0),
        ("tar@far=1e-4", "IJB-C TAR@1e-4", 100.0),
    ],
    "ijbb_1n": [("rank1", "IJB-B 1:N rank-1", 100.0), ("tpir@fpir=1e-2", "IJB-B TPIR@1e-2", 100.0)],
    "ijbc_1n": [("rank1", "IJB-C 1:N rank-1", 100.0), ("tpir@fpir=1e-2", "IJB-C TPIR@1e-2", 100.0)],
    "megaface": [("rank1", "MegaFace rank-1", 100.0), ("tar@far=1e-6", "MegaFace TAR@1e-6", 100.0)],
    "kface": [(f"{q}/tar@far=1e-3", f"K-FACE {q} TAR@1e-3", 100.0) for q in ("Q1", "Q2", "Q3", "Q4")],
    "demo": [("accuracy", "demo accuracy", 100.0), ("rank1", "demo rank-1", 100.0)],
}


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _headline_key(protocol: str) -> str | None:
    """The :data:`HEADLINE_COLUMNS` key naming ``protocol`` (ignoring case and punctuation), if any."""
    norm = _norm_name(protocol)
    return next((k for k in HEADLINE_COLUMNS if _norm_name(k) == norm), None)


def _resolve_key(mapping: Mapping[str, Any], key: str) -> str | None:
    """``key`` if present, else a key naming the same number (``tar@far=1e-4`` = ``tar@far=0.0001``)."""
    if key in mapping:
        return key
    return next((candidate for candidate in mapping if metric_names.same_metric(candidate, key)), None)


def headline_columns(protocol: str, metrics: Iterable[str] = (), display_name: str | None = None
                     ) -> list[tuple[str, str, float]]:
    """The ``(metric, label, scale)`` headline columns of ``protocol``.

    From :data:`HEADLINE_COLUMNS` when listed; otherwise a fallback from the metrics present: ``accuracy`` and
    ``rank1`` if there, else ``tar@far=1e-4``, else the first metric in table order (rates scaled to percent; names
    and order from :mod:`fr_bench.metrics.names`).
    """
    known = _headline_key(protocol)
    if known is not None:
        return list(HEADLINE_COLUMNS[known])
    metrics = [m for m in metrics if not m.endswith("_std")]
    name = display_name or protocol
    chosen = [m for m in ("accuracy", "rank1") if m in metrics]
    if not chosen:
        tar = _resolve_key(dict.fromkeys(metrics), "tar@far=1e-4")
        chosen = [tar] if tar else sorted(metrics, key=metric_names.sort_key)[:1]
    return [(m, f"{name} {m}", 100.0 if metric_names.is_rate(m) else 1.0) for m in chosen]


# --------------------------------------------------------------------------------------------------------------------
# Leaderboard
# --------------------------------------------------------------------------------------------------------------------


def _latest_per_model(records: Sequence[StoredResult]) -> dict[str, dict[str, StoredResult]]:
    """protocol -> model -> record; duplicates keep the newest ``created`` (with a warning)."""
    table: dict[str, dict[str, StoredResult]] = {}
    for rec in records:
        per_model = table.setdefault(rec.protocol_name, {})
        old = per_model.get(rec.model_name)
        if old is not None:
            keep = rec if rec.created >= old.created else old
            warnings.warn(
                f"two results of {rec.model_name} on {rec.protocol_name} ({old.source or old.created}, "
                f"{rec.source or rec.created}); the leaderboard uses the newer one ({keep.source or keep.created})",
                stacklevel=3,
            )
            per_model[rec.model_name] = keep
        else:
            per_model[rec.model_name] = rec
    return table


def _protocol_order(names: Iterable[str], protocols: Sequence[str] | None) -> list[str]:
    names = list(names)
    if protocols is not None:
        by_norm = {_norm_name(n): n for n in names}
        return [by_norm[_norm_name(p)] for p in protocols if _norm_name(p) in by_norm]
    known = list(HEADLINE_COLUMNS)

    def key(name: str) -> tuple[int, str]:
        k = _headline_key(name)
        return (known.index(k) if k is not None else len(known), name)

    return sorted(names, key=key)


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"Z{i - 25}" for i in range(n)]


def _short(h: str | None) -> str:
    return f"data {h[:12]}" if h else "data hash not recorded"


def _columns_plan(records: Sequence[StoredResult], protocols: Sequence[str] | None, columns: Sequence[str] | None):
    """Shared by :func:`leaderboard` and :func:`leaderboard_values`: which columns, from which records."""
    table = _latest_per_model(records)
    plan: list[tuple[str, str, str, float, dict[str, StoredResult]]] = []  # label, protocol, metric, scale, recs
    for proto in _protocol_order(table, protocols):
        per_model = table[proto]
        metrics = sorted({m for r in per_model.values() for m in r.result.metrics})
        display = next(iter(per_model.values())).display_name
        for metric, label, scale in headline_columns(proto, metrics, display):
            if any(_resolve_key(r.result.metrics, metric) for r in per_model.values()):
                plan.append((label, proto, metric, scale, per_model))
    if columns is not None:
        by_label = {p[0]: p for p in plan}
        missing = [c for c in columns if c not in by_label]
        if missing:
            raise KeyError(f"unknown leaderboard column(s) {missing}; available: {list(by_label)}")
        plan = [by_label[c] for c in columns]
    models = sorted({m for _, _, _, _, per_model in plan for m in per_model})
    return table, plan, models


def leaderboard_values(records: Sequence[StoredResult], protocols: Sequence[str] | None = None,
                       columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The leaderboard's numbers as floats (already scaled, e.g. percent), NaN where a model has no result."""
    _, plan, models = _columns_plan(records, protocols, columns)
    data = {}
    for label, _, metric, scale, per_model in plan:
        col = []
        for model in models:
            rec = per_model.get(model)
            key = _resolve_key(rec.result.metrics, metric) if rec else None
            col.append(as_number(rec.result.metrics[key]) * scale if key else math.nan)
        data[label] = col
    return pd.DataFrame(data, index=pd.Index(models, name="model"))


def leaderboard(
    records: Sequence[StoredResult],
    protocols: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    *,
    sort_by: str | None = None,
    intervals: bool = True,
    decimals: int = 2,
) -> pd.DataFrame:
    """One row per model, the headline columns of each protocol, as formatted text cells.

    ``protocols`` selects and orders protocols (default: all, in :data:`HEADLINE_COLUMNS` order, then by name);
    ``columns`` selects and orders columns by label. Rows are sorted by model name unless ``sort_by`` names a column:
    then by that column's value, best first -- refused with ``ValueError`` when the column mixes data or
    convention groups (see module doc). Empty cell: no result. Footnotes (markers, conventions legend, interval
    levels) are in ``df.attrs["footnotes"]``; ``df.attrs["groups"]`` maps each marked column to
    ``{model: group letter}`` and ``df.attrs["comparable"]`` each column to whether its values may be ranked.
    """
    _, plan, models = _columns_plan(records, protocols, columns)
    cells: dict[str, list[str]] = {label: [""] * len(models) for label, *_ in plan}
    footnotes: list[str] = []
    groups: dict[str, dict[str, str]] = {}
    comparable: dict[str, bool] = {}
    flag_numbers: dict[tuple[str, str], int] = {}
    levels: set[str] = set()
    done_protocols: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    for label, proto, metric, scale, per_model in plan:
        if proto not in done_protocols:
            done_protocols[proto] = _protocol_notes(proto, per_model, footnotes)
        data_marks, conv_marks = done_protocols[proto]
        comparable[label] = not data_marks and not conv_marks
        if data_marks or conv_marks:
            groups[label] = {m: data_marks.get(m, "") + conv_marks.get(m, "") for m in per_model}
        for i, model in enumerate(models):
            rec = per_model.get(model)
            if rec is None:
                continue
            key = _resolve_key(rec.result.metrics, metric)
            if key is None:
                continue
            ikey = _resolve_key(rec.result.intervals, metric) if intervals else None
            interval = rec.result.intervals.get(ikey) if ikey else None
            if interval:
                levels.add(_level_text(interval))
            text = format_value(rec.result.metrics[key], scale, interval, decimals)
            marks = [s for s in (data_marks.get(model), conv_marks.get(model)) if s]
            if rec.flags:
                if (model, proto) not in flag_numbers:
                    flag_numbers[(model, proto)] = len(flag_numbers) + 1
                    footnotes.append(f"*{flag_numbers[(model, proto)]} {model} on {rec.display_name}: "
                                     + "; ".join(rec.flags))
                marks.append(f"*{flag_numbers[(model, proto)]}")
            cells[label][i] = " ".join([text, *marks])

    if levels:
        footnotes.insert(0, "[low, high]: " + ", ".join(sorted(levels)) + "; rates in percent")
    df = pd.DataFrame(cells, index=pd.Index(models, name="model"), dtype=object)
    if sort_by is not None:
        if sort_by not in cells:
            raise KeyError(f"cannot sort by {sort_by!r}: no such column; columns: {list(cells)}")
        if not comparable[sort_by]:
            raise ValueError(
                f"refusing to rank by {sort_by!r}: its results were computed on different data or under different "
                "conventions (see the footnotes); rank within one group instead"
            )
        values = leaderboard_values(records, protocols, [sort_by])[sort_by].reindex(df.index)
        order = sorted(df.index, key=lambda m: (math.isnan(values[m]), -values[m] if not math.isnan(values[m])
                                                else 0.0, m))
        df = df.loc[order]
    df.attrs["footnotes"] = footnotes
    df.attrs["groups"] = groups
    df.attrs["comparable"] = comparable
    return df


def _level_text(interval: Mapping[str, Any]) -> str:
    level = as_number(interval.get("level"))
    text = f"{level * 100:g}% confidence interval" if not math.isnan(level) else "confidence interval"
    n_boot = interval.get("n_boot")
    return text + (f" (bootstrap, {n_boot} resamples)" if n_boot else "")


def _protocol_notes(proto: str, per_model: Mapping[str, StoredResult], footnotes: list[str]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """Markers per model for data groups and convention groups of one protocol; appends their footnotes."""
    display = next(iter(per_model.values())).display_name
    data_marks: dict[str, str] = {}
    conv_marks: dict[str, str] = {}

    hashes = sorted({r.data_hash or "" for r in per_model.values()})
    if len(hashes) > 1:
        letter = dict(zip(hashes, _letters(len(hashes))))
        parts = []
        for h in hashes:
            members = sorted(m for m, r in per_model.items() if (r.data_hash or "") == h)
            release = next((per_model[m].data_release for m in members if per_model[m].data_release), None)
            desc = _short(h or None) + (f", release {release!r}" if release else "")
            parts.append(f"†{letter[h]} = {desc} ({', '.join(members)})")
            for m in members:
                data_marks[m] = f"†{letter[h]}"
        footnotes.append(f"{display}: results computed on different data; not comparable across groups, "
                         f"not ranked: " + "; ".join(parts))

    def signature(rec: StoredResult) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((str(k), str(v)) for k, v in rec.conventions.items()))

    sigs = sorted({signature(r) for r in per_model.values()})
    if len(sigs) > 1:
        letter = dict(zip(sigs, _letters(len(sigs))))
        parts = []
        for sig in sigs:
            members = sorted(m for m, r in per_model.items() if signature(r) == sig)
            desc = ", ".join(f"{k} = {v}" for k, v in sig) or "conventions not recorded"
            parts.append(f"§{letter[sig]} = {desc} ({', '.join(members)})")
            for m in members:
                conv_marks[m] = f"§{letter[sig]}"
        footnotes.append(f"{display}: results scored under different conventions; not comparable across groups, "
                         f"not ranked: " + "; ".join(parts))
    elif sigs and sigs[0]:
        footnotes.append(f"{display} conventions: " + ", ".join(f"{k} = {v}" for k, v in sigs[0]))
    return data_marks, conv_marks


def write_leaderboard(
    results_dir: str | Path,
    fmt: str = "md",
    *,
    protocols: Sequence[str] | None = None,
    sort_by: str | None = None,
    out_path: str | Path | None = None,
) -> Path:
    """Build the leaderboard of every result under ``results_dir`` and write it (atomically) to
    ``results_dir/leaderboard.<ext>`` (or ``out_path``); returns the path written."""
    if fmt not in FORMAT_EXTENSIONS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {sorted(FORMAT_EXTENSIONS)}")
    records = load_results(results_dir)
    df = leaderboard(records, protocols, sort_by=sort_by)
    if not records:
        df.attrs["footnotes"] = [f"no results found under {results_dir}"]
    path = Path(out_path) if out_path is not None else Path(results_dir) / f"leaderboard.{FORMAT_EXTENSIONS[fmt]}"
    return atomic_write_text(path, render(df, fmt))
