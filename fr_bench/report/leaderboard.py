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
* ``§a``, ``§b``, ... (EDC pAUC columns, ``edc=``): the models' quality sources or EDC settings (pair-quality
  rule, convention, starting error, discard limit) differ: same rule. Lower pAUC is better.
* ``*1``, ``*2``, ...: the result carries flags (optimistic best-threshold accuracy, unresolvable FAR, skipped
  pairs, unknown data release...); the footnote quotes them.

When one protocol's results all share data and conventions, the conventions are stated once in a legend footnote.
``suite=`` renders a suite as the papers' table (:data:`SUITE_COLUMNS`: LFW | CFP-FP | AgeDB-30 | CALFW | CPLFW |
IJB-B 1e-4 | IJB-C 1e-4, then any 1:N members' headline columns), under the same rules; empty cells are footnoted.
The markers and their footnotes are built by :mod:`fr_bench.report.leaderboard_notes`. This module formats stored
numbers only: it computes no metric and imports no models.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fr_bench.metrics import names as metric_names
from fr_bench.report.leaderboard_notes import EDC_KINDS, edc_notes, level_text, protocol_notes
from fr_bench.report.render import FORMAT_EXTENSIONS, as_number, format_value, render
from fr_bench.results import StoredResult, atomic_write_text, load_results

__all__ = ["EDC_KINDS", "HEADLINE_COLUMNS", "SUITE_COLUMNS", "headline_columns", "leaderboard", "leaderboard_values",
           "suite_columns", "write_leaderboard"]

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


#: The columns of the suite paper table (``leaderboard(..., suite=...)``): member protocol -> its ``(metric, label,
#: scale)`` columns. One column per 1:1 IJB set, at FAR 1e-4, as the papers' first table prints it (the full
#: leaderboard's :data:`HEADLINE_COLUMNS` has three for IJB-C); members not listed (the IJB 1:N sets, others) get
#: their :func:`headline_columns`.
SUITE_COLUMNS: dict[str, list[tuple[str, str, float]]] = {
    **{k: HEADLINE_COLUMNS[k] for k in ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")},
    "ijbb": [("tar@far=1e-4", "IJB-B 1e-4", 100.0)],
    "ijbc": [("tar@far=1e-4", "IJB-C 1e-4", 100.0)],
}

def suite_columns(suite: Any, metrics: Mapping[str, Iterable[str]] | None = None) -> list[tuple[str, str, str, float]]:
    """The suite table's ``(protocol, metric, label, scale)`` columns, in the suite's member order.

    ``suite``: a :class:`fr_bench.suites.Suite` (anything with ``.members``, each with ``.protocol``) or a suite
    name / TOML path for :func:`fr_bench.suites.load_suite`. ``metrics``: protocol -> stored metric names, for
    the fallback columns of members not in :data:`SUITE_COLUMNS` or :data:`HEADLINE_COLUMNS`.
    """
    if isinstance(suite, (str, Path)):
        from fr_bench.suites import load_suite  # lazily: only the suite table needs the suite specs

        suite = load_suite(suite)
    out = []
    for member in suite.members:
        proto = str(member.protocol)
        known = next((k for k in SUITE_COLUMNS if _norm_name(k) == _norm_name(proto)), None)
        cols = SUITE_COLUMNS[known] if known else headline_columns(proto, (metrics or {}).get(proto, ()))
        out += [(proto, metric, label, scale) for metric, label, scale in cols]
    return out


@dataclass(frozen=True)
class _Column:
    """One leaderboard column: its label, protocol, metric key, scale, the protocol's records per model, and the
    error kind when it is an EDC pAUC column (lower is better)."""

    label: str
    proto: str
    metric: str
    scale: float
    per_model: Mapping[str, StoredResult]
    edc: str | None = None


def _with_edc(plan: list[_Column], table: Mapping[str, Mapping[str, StoredResult]], kind: str) -> list[_Column]:
    """``plan`` with an EDC pAUC column after the last column of each protocol that has one stored."""
    if kind not in EDC_KINDS:
        raise ValueError(f"unknown EDC error kind {kind!r}; choose one of {sorted(EDC_KINDS)}")
    metric, out = f"edc_{kind}_pauc", []
    for i, col in enumerate(plan):
        out.append(col)
        last = i + 1 == len(plan) or plan[i + 1].proto != col.proto
        per_model = table.get(col.proto, {})
        if last and any(metric in r.result.metrics for r in per_model.values()):
            display = next(iter(per_model.values())).display_name
            out.append(_Column(f"{display} {EDC_KINDS[kind][1]} pAUC", col.proto, metric, 1.0, per_model, kind))
    return out


def _columns_plan(records: Sequence[StoredResult], protocols: Sequence[str] | None, columns: Sequence[str] | None,
                  *, edc: str | None = None, suite: Any = None) -> tuple[list[_Column], list[str]]:
    """Shared by :func:`leaderboard` and :func:`leaderboard_values`: which columns, from which records."""
    table = _latest_per_model(records)
    plan: list[_Column] = []
    if suite is not None:
        if protocols is not None:
            raise ValueError("give either suite= or protocols=, not both (the suite fixes the protocols)")
        by_norm = {_norm_name(p): p for p in table}
        metrics = {p: sorted({m for r in per.values() for m in r.result.metrics}) for p, per in table.items()}
        for proto, metric, label, scale in suite_columns(suite, metrics):
            name = by_norm.get(_norm_name(proto), proto)
            plan.append(_Column(label, name, metric, scale, table.get(name, {})))
    else:
        for proto in _protocol_order(table, protocols):
            per_model = table[proto]
            metrics = sorted({m for r in per_model.values() for m in r.result.metrics})
            display = next(iter(per_model.values())).display_name
            for metric, label, scale in headline_columns(proto, metrics, display):
                if any(_resolve_key(r.result.metrics, metric) for r in per_model.values()):
                    plan.append(_Column(label, proto, metric, scale, per_model))
    if edc is not None:
        plan = _with_edc(plan, table, edc)
    if columns is not None:
        by_label = {c.label: c for c in plan}
        missing = [c for c in columns if c not in by_label]
        if missing:
            raise KeyError(f"unknown leaderboard column(s) {missing}; available: {list(by_label)}")
        plan = [by_label[c] for c in columns]
    models = sorted({m for col in plan for m in col.per_model})
    return plan, models


def leaderboard_values(records: Sequence[StoredResult], protocols: Sequence[str] | None = None,
                       columns: Sequence[str] | None = None, *, edc: str | None = None,
                       suite: Any = None) -> pd.DataFrame:
    """The leaderboard's numbers as floats (already scaled, e.g. percent; EDC pAUC unscaled), NaN where a model
    has no result."""
    plan, models = _columns_plan(records, protocols, columns, edc=edc, suite=suite)
    data = {}
    for col in plan:
        values = []
        for model in models:
            rec = col.per_model.get(model)
            key = _resolve_key(rec.result.metrics, col.metric) if rec else None
            values.append(as_number(rec.result.metrics[key]) * col.scale if key else math.nan)
        data[col.label] = values
    return pd.DataFrame(data, index=pd.Index(models, name="model"))


def leaderboard(
    records: Sequence[StoredResult],
    protocols: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    *,
    sort_by: str | None = None,
    intervals: bool = True,
    decimals: int = 2,
    edc: str | None = None,
    suite: Any = None,
) -> pd.DataFrame:
    """One row per model, the headline columns of each protocol, as formatted text cells.

    ``protocols`` selects and orders protocols (default: all, in :data:`HEADLINE_COLUMNS` order, then by name);
    ``columns`` selects and orders columns by label. ``edc`` (``"fnm"`` or ``"fm"``) adds, after each protocol's
    columns, the stored EDC pAUC of that error kind (``edc_<kind>_pauc``, ``decimals + 2`` decimals, lower is
    better); results whose quality source or EDC settings differ are marked ``§a``, ``§b``, ... and never ranked
    together. ``suite`` (a :class:`fr_bench.suites.Suite` or its name) renders the suite paper table instead: the
    :func:`suite_columns` of its members, in member order, every column shown even when empty (footnoted).
    Rows are sorted by model name unless ``sort_by`` names a column: then by that column's value, best first
    (highest; lowest for an EDC pAUC) -- refused with ``ValueError`` when the column mixes data, convention or EDC
    groups (see module doc). Empty cell: no result. Footnotes are in ``df.attrs["footnotes"]``;
    ``df.attrs["groups"]`` maps each marked column to ``{model: markers}`` and ``df.attrs["comparable"]`` each
    column to whether its values may be ranked.
    """
    plan, models = _columns_plan(records, protocols, columns, edc=edc, suite=suite)
    cells: dict[str, list[str]] = {col.label: [""] * len(models) for col in plan}
    footnotes: list[str] = []
    groups: dict[str, dict[str, str]] = {}
    comparable: dict[str, bool] = {}
    flag_numbers: dict[tuple[str, str], int] = {}
    levels: set[str] = set()
    done_protocols: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    empty: dict[str, list[str]] = {}

    for col in plan:
        label, proto, per_model = col.label, col.proto, col.per_model
        if not per_model:
            comparable[label] = True
            continue
        if proto not in done_protocols:
            done_protocols[proto] = protocol_notes(proto, per_model, footnotes)
        data_marks, conv_marks = done_protocols[proto]
        edc_marks = edc_notes(label, col.edc, col.metric, per_model, footnotes) if col.edc else {}
        comparable[label] = not data_marks and not conv_marks and not edc_marks
        if not comparable[label]:
            groups[label] = {m: data_marks.get(m, "") + conv_marks.get(m, "") + edc_marks.get(m, "")
                             for m in per_model}
        for i, model in enumerate(models):
            rec = per_model.get(model)
            key = _resolve_key(rec.result.metrics, col.metric) if rec is not None else None
            if key is None:
                empty.setdefault(label, []).append(model)
                continue
            ikey = _resolve_key(rec.result.intervals, col.metric) if intervals else None
            interval = rec.result.intervals.get(ikey) if ikey else None
            if interval:
                levels.add(level_text(interval))
            text = format_value(rec.result.metrics[key], col.scale, interval, decimals + (2 if col.edc else 0))
            marks = [s for s in (data_marks.get(model), conv_marks.get(model), edc_marks.get(model)) if s]
            if rec.flags:
                if (model, proto) not in flag_numbers:
                    flag_numbers[(model, proto)] = len(flag_numbers) + 1
                    footnotes.append(f"*{flag_numbers[(model, proto)]} {model} on {rec.display_name}: "
                                     + "; ".join(rec.flags))
                marks.append(f"*{flag_numbers[(model, proto)]}")
            cells[label][i] = " ".join([text, *marks])

    if levels:
        footnotes.insert(0, "[low, high]: " + ", ".join(sorted(levels)) + "; rates in percent")
    absent = [col.label for col in plan if not col.per_model]
    if absent:
        footnotes.append("no stored result for any model: " + ", ".join(absent))
    if suite is not None and any(empty.get(col.label) and col.per_model for col in plan):
        footnotes.append("empty cell: no stored result of that model on that member (" + "; ".join(
            f"{col.label}: {', '.join(empty[col.label])}" for col in plan if col.per_model and empty.get(col.label))
            + ")")
    df = pd.DataFrame(cells, index=pd.Index(models, name="model"), dtype=object)
    if sort_by is not None:
        df = _sorted(df, plan, comparable, sort_by,
                     lambda: leaderboard_values(records, protocols, [sort_by], edc=edc, suite=suite)[sort_by])
    df.attrs["footnotes"] = footnotes
    df.attrs["groups"] = groups
    df.attrs["comparable"] = comparable
    return df


def _sorted(df: pd.DataFrame, plan: Sequence[_Column], comparable: Mapping[str, bool], sort_by: str,
            values: Any) -> pd.DataFrame:
    """``df`` ranked by column ``sort_by``, best first (lowest first for an EDC pAUC), models without a value last."""
    if sort_by not in df.columns:
        raise KeyError(f"cannot sort by {sort_by!r}: no such column; columns: {list(df.columns)}")
    if not comparable[sort_by]:
        raise ValueError(
            f"refusing to rank by {sort_by!r}: its results were computed on different data or under different "
            "conventions or EDC settings (see the footnotes); rank within one group instead"
        )
    sign = 1.0 if next(c for c in plan if c.label == sort_by).edc else -1.0
    vals = values().reindex(df.index)
    order = sorted(df.index, key=lambda m: (math.isnan(vals[m]), sign * vals[m] if not math.isnan(vals[m])
                                            else 0.0, m))
    return df.loc[order]


def write_leaderboard(
    results_dir: str | Path,
    fmt: str = "md",
    *,
    protocols: Sequence[str] | None = None,
    sort_by: str | None = None,
    out_path: str | Path | None = None,
    edc: str | None = None,
    suite: Any = None,
) -> Path:
    """Build the leaderboard of every result under ``results_dir`` and write it (atomically) to
    ``results_dir/leaderboard.<ext>`` (or ``out_path``; ``edc`` and ``suite`` as in :func:`leaderboard`); returns
    the path written."""
    if fmt not in FORMAT_EXTENSIONS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {sorted(FORMAT_EXTENSIONS)}")
    records = load_results(results_dir)
    df = leaderboard(records, protocols, sort_by=sort_by, edc=edc, suite=suite)
    if not records:
        df.attrs["footnotes"] = [f"no results found under {results_dir}"]
    path = Path(out_path) if out_path is not None else Path(results_dir) / f"leaderboard.{FORMAT_EXTENSIONS[fmt]}"
    return atomic_write_text(path, render(df, fmt))
