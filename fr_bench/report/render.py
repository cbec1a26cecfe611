"""Cells and tables as text: numbers with their intervals; Markdown, CSV, LaTeX or HTML showing names as typed.

Names come from users (model names, flags, display names), so every format escapes them: Markdown gets no HTML,
link, emphasis, code span, math or cell break (:func:`md_escape`); a CSV cell never starts like a spreadsheet
formula (:func:`csv_cell`) and footnotes are ``#`` comment lines; LaTeX and HTML are escaped for their syntax.
This module formats stored numbers only: it computes no metric.
"""

from __future__ import annotations

import csv
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["FORMAT_EXTENSIONS", "as_number", "csv_cell", "format_value", "md_escape", "render"]

#: ``render`` format -> file extension used by :func:`write_leaderboard`.
FORMAT_EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}




def as_number(value: Any) -> float:
    """``float(value)``, NaN when it is not a number (``None``, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def format_value(value: float, scale: float = 100.0, interval: Mapping[str, Any] | None = None,
                 decimals: int = 2) -> str:
    """``value * scale`` with ``decimals`` digits, followed by ``[low, high]`` when ``interval`` is given.

    ``interval`` is a result interval ``{"low", "high", "unit"}``; a unit of ``"%"``/``"percent"`` means its bounds
    are already percentages (scaled by ``scale / 100``), otherwise they share the metric's unit. NaN prints ``n/a``.
    """
    v = as_number(value)
    if math.isnan(v):
        return "n/a"
    text = f"{v * scale:.{decimals}f}"
    if interval:
        low, high = as_number(interval.get("low")), as_number(interval.get("high"))
        if not (math.isnan(low) or math.isnan(high)):
            k = scale / 100.0 if str(interval.get("unit", "")).lower() in ("%", "percent") else scale
            text += f" [{low * k:.{decimals}f}, {high * k:.{decimals}f}]"
    return text


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
