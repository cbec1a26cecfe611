"""Leaderboard, comparison and convention tables (pandas), rendered as Markdown, CSV, LaTeX or HTML.

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

import csv
import html
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fr_bench.metrics import names as metric_names
from fr_bench.results import StoredResult, atomic_write_text, load_results

__all__ = [
    "FORMAT_EXTENSIONS",
    "HEADLINE_COLUMNS",
    "comparison_table",
    "conventions_table",
    "format_comparison",
    "format_value",
    "headline_columns",
    "leaderboard",
    "leaderboard_values",
    "render",
    "write_leaderboard",
]

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

#: ``render`` format -> file extension used by :func:`write_leaderboard`.
FORMAT_EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}



def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _headline_key(protocol: str) -> str | None:
    """The :data:`HEADLINE_COLUMNS` key naming ``protocol`` (ignoring case and punctuation), if any."""
    norm = _norm_name(protocol)
    return next((k for k in HEADLINE_COLUMNS if _norm_name(k) == norm), None)


# --------------------------------------------------------------------------------------------------------------------
# Looking numbers up in a result
# --------------------------------------------------------------------------------------------------------------------


def _resolve_key(mapping: Mapping[str, Any], key: str) -> str | None:
    """``key`` if present, else a key naming the same number (``tar@far=1e-4`` = ``tar@far=0.0001``)."""
    if key in mapping:
        return key
    return next((candidate for candidate in mapping if metric_names.same_metric(candidate, key)), None)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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


def format_value(value: float, scale: float = 100.0, interval: Mapping[str, Any] | None = None,
                 decimals: int = 2) -> str:
    """``value * scale`` with ``decimals`` digits, followed by ``[low, high]`` when ``interval`` is given.

    ``interval`` is a result interval ``{"low", "high", "unit"}``; a unit of ``"%"``/``"percent"`` means its bounds
    are already percentages (scaled by ``scale / 100``), otherwise they share the metric's unit. NaN prints ``n/a``.
    """
    v = _number(value)
    if math.isnan(v):
        return "n/a"
    text = f"{v * scale:.{decimals}f}"
    if interval:
        low, high = _number(interval.get("low")), _number(interval.get("high"))
        if not (math.isnan(low) or math.isnan(high)):
            k = scale / 100.0 if str(interval.get("unit", "")).lower() in ("%", "percent") else scale
            text += f" [{low * k:.{decimals}f}, {high * k:.{decimals}f}]"
    return text


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
            col.append(_number(rec.result.metrics[key]) * scale if key else math.nan)
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
    level = _number(interval.get("level"))
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


# --------------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "\n": " ", "\r": " "}
_LATEX_SYMBOLS = {"†": r"\textsuperscript{\dag}", "§": r"\textsuperscript{\S}", "±": r"$\pm$", "Δ": r"$\Delta$",
                  "−": "-", "…": r"\dots{}", "×": r"$\times$"}


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    out = re.sub(r"†(\w*)", r"\\textsuperscript{\\dag{}\1}", out)  # footnote markers as superscripts
    out = re.sub(r"§(\w*)", r"\\textsuperscript{\\S{}\1}", out)
    for sym, cmd in _LATEX_SYMBOLS.items():
        out = out.replace(sym, cmd)
    return out


_MD_PUNCT = re.compile(r"[\\`*_|~$]")
#: ``]`` that would close a link, image, reference or link definition: ``](``, ``][``, ``]:``.
_MD_LINK_CLOSE = re.compile(r"\](?=[(\[:])")
#: ``<`` that would open an HTML tag, comment or autolink (``<a``, ``</``, ``<!``, ``<?``); ``<=`` stays as is.
_MD_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown table-cell text: no HTML, no link, no emphasis, no code span, no cell break.

    Backslash-escapes ``\\ ` * _ | ~ $`` (``$`` opens math on GitHub) and a ``]`` that would close a link (``](``, ``][``, ``]:``), writes a ``<``
    that would open a tag as ``&lt;``, and joins lines. Names come from users (model names, flags, display names):
    ``[x](http://a)`` or ``<script>`` in one must show as typed, not as a link or markup.
    """
    out = " ".join(str(text).splitlines())
    out = _MD_PUNCT.sub(lambda m: "\\" + m.group(0), out)
    out = _MD_LINK_CLOSE.sub(r"\\]", out)
    return _MD_TAG_OPEN.sub("&lt;", out)


#: Characters that make a spreadsheet cell a formula (OWASP CSV injection list).
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CSV_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string starting like a formula gets a leading ``'``.

    Plain numbers (``-0.10``, ``+0.08``, ``1e-3``) are left alone: they cannot run anything.
    """
    if not isinstance(value, str) or not value.startswith(_CSV_FORMULA_START) or _CSV_NUMBER.match(value):
        return value
    return "'" + value


def _md_cell(text: Any) -> str:
    return md_escape(text)


def _markdown(df: pd.DataFrame, index: bool) -> str:
    frame = df.reset_index() if index else df
    header = [_md_cell(c) for c in frame.columns]
    align = [":---" if (index and i == 0) or not _is_numeric_column(frame.iloc[:, i]) else "---:"
             for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell("" if _isna(v) else v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_numeric_column(col: pd.Series) -> bool:
    """Right-align columns whose cells start with a number (or are empty / n/a)."""
    return all(_isna(v) or str(v) == "" or re.match(r"^([-+<>]?\d|n/a)", str(v)) for v in col)


def render(df: pd.DataFrame, fmt: str = "md", footnotes: Sequence[str] | None = None,
           index: bool | None = None) -> str:
    """``df`` as text: ``"md"`` (GitHub pipe table), ``"csv"``, ``"latex"`` (booktabs ``tabular``) or ``"html"``.

    ``footnotes`` default to ``df.attrs["footnotes"]``; they follow the table (Markdown: a bullet list; CSV: lines
    starting with ``#``, read back with ``pandas.read_csv(..., comment="#")``; LaTeX: ``\\footnotesize`` paragraphs;
    HTML: ``<ul class="footnotes">``). ``index`` (default: when the index is named, e.g. ``model``) prints the
    index as the first column. Cell text is escaped for the target format.
    """
    notes = list(df.attrs.get("footnotes", []) if footnotes is None else footnotes)
    if index is None:
        index = df.index.name is not None
    if fmt == "md":
        out = _markdown(df, index)
        if notes:
            out += "\n" + "".join(f"- {_md_cell(n)}\n" for n in notes)
        return out
    if fmt == "csv":
        frame = df.map(csv_cell)
        frame.columns = [csv_cell(str(c)) for c in frame.columns]
        frame.index = pd.Index([csv_cell(str(i)) for i in frame.index], name=df.index.name)
        # every text cell quoted: a '#' inside one is then not a comment for read_csv(comment="#")
        out = frame.to_csv(index=index, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        return out + "".join(f"# {' '.join(str(n).splitlines())}\n" for n in notes)
    if fmt == "latex":
        frame = df.reset_index() if index else df
        frame = frame.map(lambda v: "" if _isna(v) else _latex_escape(v))
        frame.columns = [_latex_escape(c) for c in frame.columns]
        align = "".join("r" if _is_numeric_column(df.reset_index().iloc[:, i] if index else df.iloc[:, i])
                        and not (index and i == 0) else "l" for i in range(frame.shape[1]))
        out = frame.style.hide(axis="index").to_latex(hrules=True, column_format=align)
        if notes:
            out += "{\\footnotesize\n" + "".join(f"{_latex_escape(n)}\\par\n" for n in notes) + "}\n"
        return out
    if fmt == "html":
        frame = df.reset_index() if index else df
        out = frame.to_html(index=False, escape=True, na_rep="", border=0, classes="frbench-table")
        if notes:
            out += '\n<ul class="footnotes">\n' + "".join(f"  <li>{html.escape(n)}</li>\n" for n in notes) + "</ul>"
        return out + "\n"
    raise ValueError(f"unknown table format {fmt!r}; choose one of {sorted(FORMAT_EXTENSIONS)}")


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


# --------------------------------------------------------------------------------------------------------------------
# Comparison of two models, conventions side by side
# --------------------------------------------------------------------------------------------------------------------


def _format_p(p: Any) -> str:
    v = _number(p)
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
        a, b = _number(row.get("a")), _number(row.get("b"))
        diff = _number(row.get("diff", b - a))
        labels.append(str(row["metric"]) + (f" (n={row['n']})" if row.get("n") is not None else ""))
        out[model_a].append(format_value(a, scale, decimals=decimals))
        out[model_b].append(format_value(b, scale, decimals=decimals))
        out[f"Δ ({model_b} − {model_a})"].append("n/a" if math.isnan(diff) else f"{diff * scale:+.{decimals}f}")
        low, high = _number(row.get("low")), _number(row.get("high"))
        out["interval"].append("" if math.isnan(low) or math.isnan(high)
                               else f"[{low * scale:+.{decimals}f}, {high * scale:+.{decimals}f}]")
        out["p"].append(_format_p(row.get("p_value")))
        if row.get("test"):
            tests.add(str(row["test"]))
        if row.get("level") is not None:
            levels.add(f"{_number(row['level']) * 100:g}%")
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
        value = _number(row["value"]) * float(row.get("scale", 100.0))
        if row.get("default"):
            reference[key] = value
        else:
            reference.setdefault(key, value)
    table: dict[str, list[str]] = {k: [] for k in ("group", "convention", "metric", "value", "Δ vs default",
                                                   "realised FAR", "threshold", "note")}
    for row in rows:
        scale = float(row.get("scale", 100.0))
        value = _number(row["value"]) * scale
        ref = reference[(str(row["group"]), str(row["metric"]))]
        table["group"].append(str(row["group"]))
        table["convention"].append(str(row["convention"]) + (" (default)" if row.get("default") else ""))
        table["metric"].append(str(row["metric"]))
        table["value"].append("n/a" if math.isnan(value) else f"{value:.{decimals}f}")
        delta = value - ref
        table["Δ vs default"].append("" if math.isnan(delta) else f"{delta:+.{decimals}f}")
        far = _number(row.get("far"))
        table["realised FAR"].append("" if math.isnan(far) else f"{far:.2e}")
        thr = _number(row.get("threshold"))
        table["threshold"].append("" if math.isnan(thr) else f"{thr:.4f}")
        table["note"].append(str(row.get("note") or ""))
    df = pd.DataFrame(table, dtype=object)
    df.attrs["footnotes"] = ["value and Δ in percent (percentage points) for rates; Δ relative to the default "
                             "convention of the same metric"]
    return df
