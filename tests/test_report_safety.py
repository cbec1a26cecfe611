"""Hostile names in reports: Markdown shows them as typed, CSV cells never run as formulas, footnotes are CSV
comments, LaTeX and HTML escape them, and figures never parse them as math."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd
import pytest

import fr_bench.report.plots as plots
from fr_bench.report.tables import render

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTAB",
    "<script>alert(1)</script>",
    "[x](http://a)",
    "![img](http://a/i.png)",
    "$\\alpha$",
    "a_b*c*`d`",
    "m#1 | pipe",
]


def _frame() -> pd.DataFrame:
    df = pd.DataFrame({"LFW": [f"99.{i:02d}" for i in range(len(HOSTILE))],
                       "note": HOSTILE},
                      index=pd.Index(HOSTILE, name="model"), dtype=object)
    df.attrs["footnotes"] = ["*1 <b>flag</b> of [x](http://a)", "second\nline =1+1"]
    return df


def _strip_escapes(text: str) -> str:
    """What a Markdown reader shows for the escapes md_escape writes (backslash escapes, &lt;)."""
    return re.sub(r"\\(.)", r"\1", text).replace("&lt;", "<")


def test_markdown_has_no_link_html_math_or_cell_break():
    md = render(_frame(), "md")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(HOSTILE)
    for line in table:  # each row keeps its 3 cells: no unescaped "|" inside one
        assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    assert "<script" not in md and "<b>" not in md
    assert not re.search(r"(?<!\\)\]\(", md) and "\\](" in md  # no link closes
    assert not re.search(r"(?<!\\)\$", md) and not re.search(r"(?<!\\)[`*_]", md)
    for row, name in zip(table[2:], HOSTILE):  # shown as typed once the escapes are read
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert _strip_escapes(cells[0]) == name.strip()
    notes = [line for line in md.splitlines() if line.startswith("- ")]
    assert len(notes) == 2 and "second line =1+1" in notes[1]


@pytest.mark.parametrize("engine", ["stdlib", "pandas"])
def test_csv_cells_are_text_and_footnotes_are_comments(engine):
    text = render(_frame(), "csv")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert len(comments) == 2 and "# second line =1+1" in comments
    if engine == "stdlib":
        rows = list(csv.reader(io.StringIO("\n".join(body))))
        cells = [c for row in rows for c in row]
    else:
        back = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
        assert len(back) == len(HOSTILE)  # footnotes are not rows, '#' in a cell is not a comment
        cells = [*back.columns, *back.to_numpy().ravel().tolist()]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    for name in HOSTILE:
        assert "'" + name in cells if name.startswith(("=", "+", "-", "@", "\t")) else name in cells


def test_csv_leaves_signed_numbers_alone():
    df = pd.DataFrame({"Δ": ["+0.08", "-0.10", "1e-3"]}, dtype=object)
    back = pd.read_csv(io.StringIO(render(df, "csv", index=False)), comment="#")
    np.testing.assert_allclose(back["Δ"].to_numpy(float), [0.08, -0.10, 1e-3])


def test_latex_and_html_escape_names():
    tex = render(_frame(), "latex")
    assert "<script>" not in tex and "\\textless{}script\\textgreater{}" in tex
    assert "\\$\\textbackslash{}alpha\\$" in tex and "m\\#1 \\textbar{} pipe" in tex
    html = render(_frame(), "html")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html


@pytest.fixture
def figures(monkeypatch):
    made = []
    real = plots.new_figure
    monkeypatch.setattr(plots, "new_figure", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    return made


def _shown(fig) -> list[str]:
    ax = fig.axes[0]
    return [ax.get_title(), *(t.get_text() for t in ax.get_legend().get_texts())]


@pytest.mark.parametrize("kind", ["roc", "det"])
def test_plot_names_are_not_math(tmp_path, figures, kind):
    far = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    curves = {"$\\frac$": (far, np.array([0.5, 0.7, 0.8, 0.9, 1.0])),  # malformed math: would stop the render
              "$\\alpha$": (far, np.array([0.4, 0.6, 0.7, 0.85, 1.0])),
              "_hidden": (far, np.array([0.3, 0.5, 0.6, 0.8, 1.0]))}
    draw = plots.plot_roc if kind == "roc" else plots.plot_det
    (path,) = draw(curves, None, tmp_path / f"{kind}.png", title="$\\beta$ model")
    assert path.stat().st_size > 0
    (fig,) = figures
    shown = _shown(fig)
    assert shown[0] == "$\\beta$ model" and "$\\alpha$" in shown and "$\\frac$" in shown
    assert any(s.strip() == "_hidden" for s in shown)  # a leading underscore does not hide the entry
    texts = [fig.axes[0].title, *fig.axes[0].get_legend().get_texts()]
    assert not any(t.get_parse_math() or t.get_usetex() for t in texts)


def test_distribution_title_is_not_math(tmp_path, figures):
    dist = {"bin_edges": [0.0, 0.5, 1.0], "genuine_counts": [1, 9], "impostor_counts": [9, 1], "dprime": 1.2,
            "overlap": 0.2}
    (path,) = plots.plot_distribution(dist, tmp_path / "d.png", title="$\\frac$ on <demo>")
    assert path.stat().st_size > 0
    (fig,) = figures
    assert fig.axes[0].get_title().startswith("$\\frac$ on <demo>")
    assert not fig.axes[0].title.get_parse_math()
