"""Leaderboard, comparison and convention tables: values by hand, provenance/convention/flag markers, rendering."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from fr_bench.protocols.base import ProtocolResult
from fr_bench.report.tables import (
    comparison_table,
    conventions_table,
    format_comparison,
    format_value,
    leaderboard,
    leaderboard_values,
    render,
    write_leaderboard,
)
from fr_bench.results import StoredResult, write_result

H1, H2 = "1" * 64, "2" * 64


def rec(model, protocol, metrics, data_hash=H1, conventions=None, intervals=None, flags=(), display=None,
        created="2026-01-01T00:00:00+00:00"):
    return StoredResult(
        model={"name": model},
        protocol={"name": protocol, "display_name": display or protocol, "data": {"combined": data_hash}},
        result=ProtocolResult(protocol, dict(metrics), conventions=conventions or {"accuracy": "kfold-grid"},
                              intervals=intervals or {}, flags=list(flags)),
        created=created,
    )


def records():
    return [
        rec("arcface", "lfw", {"accuracy": 0.99817, "accuracy_std": 0.003},
            intervals={"accuracy": {"low": 0.99712, "high": 0.99902, "level": 0.95, "unit": "fraction",
                                    "n_boot": 1000}}, display="LFW"),
        rec("sface", "lfw", {"accuracy": 0.9945}, display="LFW"),
        rec("sface", "agedb_30", {"accuracy": 0.9}, display="AgeDB-30"),
        rec("arcface", "ijbc", {"tar@far=1e-6": 0.8912, "tar@far=1e-05": 0.9431, "tar@far=0.0001": 0.9665,
                                "tar@far=1e-3": 0.98}, conventions={"tar": "nearest"}, display="IJB-C"),
        rec("sface", "ijbc", {"tar@far=1e-4": 0.9},
            conventions={"tar": "nearest"}, flags=["TAR@FAR=1e-6 unresolvable"], display="IJB-C"),
        rec("sface", "cfp_fp", {"accuracy": 0.95}, display="CFP-FP"),
    ]


def test_format_value_by_hand():
    assert format_value(0.99817) == "99.82"
    assert format_value(0.99817, interval={"low": 0.99712, "high": 0.99902}) == "99.82 [99.71, 99.90]"
    assert format_value(0.99817, interval={"low": 99.712, "high": 99.902, "unit": "%"}) == "99.82 [99.71, 99.90]"
    assert format_value(float("nan")) == "n/a"
    assert format_value(0.5, scale=1.0, decimals=3) == "0.500"


def test_leaderboard_columns_in_published_order_and_values():
    df = leaderboard(records())
    assert list(df.columns) == ["LFW", "CFP-FP", "AgeDB-30", "IJB-C TAR@1e-6", "IJB-C TAR@1e-5", "IJB-C TAR@1e-4"]
    assert list(df.index) == ["arcface", "sface"] and df.index.name == "model"
    assert df.loc["arcface", "LFW"] == "99.82 [99.71, 99.90]"
    assert df.loc["sface", "LFW"] == "99.45"
    assert df.loc["arcface", "IJB-C TAR@1e-5"] == "94.31"  # "tar@far=1e-05" is the same operating point
    assert df.loc["arcface", "IJB-C TAR@1e-4"] == "96.65"
    assert df.loc["arcface", "CFP-FP"] == ""  # no result: empty cell
    assert df.loc["sface", "IJB-C TAR@1e-6"] == ""
    assert df.loc["sface", "IJB-C TAR@1e-4"] == "90.00 *1"
    notes = df.attrs["footnotes"]
    assert any(n.startswith("[low, high]: 95% confidence interval (bootstrap, 1000 resamples)") for n in notes)
    assert "*1 sface on IJB-C: TAR@FAR=1e-6 unresolvable" in notes
    assert "LFW conventions: accuracy = kfold-grid" in notes
    assert all(df.attrs["comparable"].values())

    values = leaderboard_values(records())
    assert values.loc["arcface", "LFW"] == pytest.approx(99.817)
    assert values.loc["sface", "IJB-C TAR@1e-4"] == pytest.approx(90.0)
    assert math.isnan(values.loc["arcface", "CFP-FP"])


def test_leaderboard_protocol_and_column_selection():
    df = leaderboard(records(), protocols=["IJB-C", "LFW"])  # matched ignoring case and punctuation
    assert list(df.columns) == ["IJB-C TAR@1e-6", "IJB-C TAR@1e-5", "IJB-C TAR@1e-4", "LFW"]
    df = leaderboard(records(), columns=["IJB-C TAR@1e-4", "LFW"])
    assert list(df.columns) == ["IJB-C TAR@1e-4", "LFW"]
    with pytest.raises(KeyError, match="MegaFace"):
        leaderboard(records(), columns=["MegaFace rank-1"])


def test_sort_by_ranks_best_first_when_comparable():
    df = leaderboard(records(), sort_by="LFW")
    assert list(df.index) == ["arcface", "sface"]
    recs = [rec("m1", "lfw", {"accuracy": 0.97}), rec("m2", "lfw", {"accuracy": 0.99}), rec("m3", "cfp_fp", {})]
    recs[2].result.metrics["accuracy"] = 0.5
    assert list(leaderboard(recs, sort_by="LFW").index) == ["m2", "m1", "m3"]  # no LFW value: last


def test_different_data_hashes_are_marked_and_never_ranked():
    recs = records()
    recs[1] = rec("sface", "lfw", {"accuracy": 0.9945}, data_hash=H2, display="LFW")
    recs.append(rec("zeta", "lfw", {"accuracy": 0.9}, data_hash=None, display="LFW"))
    df = leaderboard(recs)
    assert df.loc["arcface", "LFW"].endswith("†B")  # groups lettered by sorted hash: "" < H1 < H2
    assert df.loc["sface", "LFW"] == "99.45 †C"
    assert df.loc["zeta", "LFW"] == "90.00 †A"
    assert df.attrs["comparable"]["LFW"] is False and df.attrs["comparable"]["IJB-C TAR@1e-4"] is True
    assert df.attrs["groups"]["LFW"] == {"arcface": "†B", "sface": "†C", "zeta": "†A"}
    note = next(n for n in df.attrs["footnotes"] if "different data" in n)
    assert note.startswith("LFW: results computed on different data")
    assert "†B = data 111111111111 (arcface)" in note and "†C = data 222222222222 (sface)" in note
    assert "†A = data hash not recorded (zeta)" in note
    with pytest.raises(ValueError, match="refusing to rank by 'LFW'"):
        leaderboard(recs, sort_by="LFW")
    # other protocols stay unmarked
    assert "†" not in df.loc["sface", "AgeDB-30"]
    # same hash everywhere: no marker
    assert "†" not in "".join(leaderboard(records()).to_numpy().ravel())


def test_different_conventions_are_marked():
    recs = records()
    recs[1] = rec("sface", "lfw", {"accuracy": 0.9945}, conventions={"accuracy": "best-threshold"}, display="LFW")
    df = leaderboard(recs)
    assert df.loc["arcface", "LFW"].endswith("§B") and df.loc["sface", "LFW"] == "99.45 §A"
    note = next(n for n in df.attrs["footnotes"] if "different conventions" in n)
    assert "§A = accuracy = best-threshold (sface)" in note and "§B = accuracy = kfold-grid (arcface)" in note
    with pytest.raises(ValueError, match="refusing"):
        leaderboard(recs, sort_by="LFW")


def test_duplicate_results_keep_the_newest():
    recs = [rec("m", "lfw", {"accuracy": 0.9}, created="2026-01-01T00:00:00+00:00"),
            rec("m", "lfw", {"accuracy": 0.8}, created="2026-02-01T00:00:00+00:00")]
    with pytest.warns(UserWarning, match="newer"):
        df = leaderboard(recs)
    assert df.loc["m", "LFW"] == "80.00"


def test_unknown_protocol_falls_back_to_its_metrics():
    df = leaderboard([rec("m", "newbench", {"rank1": 0.75, "rank5": 0.9}, display="NewBench")])
    assert list(df.columns) == ["NewBench rank1"] and df.loc["m", "NewBench rank1"] == "75.00"


def test_render_formats_contain_cells_and_footnotes():
    recs = records()
    recs[1] = rec("sface", "lfw", {"accuracy": 0.9945}, data_hash=H2, display="LFW")
    df = leaderboard(recs)

    md = render(df, "md")
    lines = md.splitlines()
    assert lines[0] == ("| model | LFW | CFP-FP | AgeDB-30 | IJB-C TAR@1e-6 | IJB-C TAR@1e-5 | IJB-C TAR@1e-4 |")
    assert lines[1] == "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |"
    assert "| arcface | 99.82 [99.71, 99.90] †A |  |  | 89.12 | 94.31 | 96.65 |" in lines
    assert any(line.startswith("- LFW: results computed on different data") for line in lines)

    csv = render(df, "csv")
    back = pd.read_csv(io.StringIO(csv), comment="#", index_col="model", keep_default_na=False)
    assert back.loc["arcface", "LFW"] == "99.82 [99.71, 99.90] †A"
    assert back.loc["sface", "IJB-C TAR@1e-4"] == "90.00 *1"
    assert "# *1 sface on IJB-C: TAR@FAR=1e-6 unresolvable" in csv.splitlines()

    tex = render(df, "latex")
    assert "\\begin{tabular}{lrrrrrr}" in tex and "\\toprule" in tex
    assert "arcface & 99.82 [99.71, 99.90] \\textsuperscript{\\dag{}A} &  &  & 89.12 & 94.31 & 96.65 \\\\" in tex
    assert "IJB-C TAR@1e-6" in tex and "95\\% confidence interval" in tex

    html = render(df, "html")
    assert "<td>99.82 [99.71, 99.90] †A</td>" in html and "<th>model</th>" in html
    assert '<ul class="footnotes">' in html

    with pytest.raises(ValueError, match="unknown table format"):
        render(df, "xlsx")


def test_render_escapes_special_characters():
    df = pd.DataFrame({"a|b": ["x_1 & <y> 5%"]}, index=pd.Index(["m#1"], name="model"))
    assert "a\\|b" in render(df, "md")
    tex = render(df, "latex")
    assert "x\\_1 \\& \\textless{}y\\textgreater{} 5\\%" in tex and "m\\#1" in tex
    assert "x_1 &amp; &lt;y&gt; 5%" in render(df, "html")


def test_write_leaderboard(tmp_path):
    for r in records():
        write_result(tmp_path, r)
    path = write_leaderboard(tmp_path, "md")
    assert path == tmp_path / "leaderboard.md"
    text = path.read_text()
    assert "| arcface | 99.82 [99.71, 99.90] |" in text
    assert write_leaderboard(tmp_path, "latex").name == "leaderboard.tex"
    empty = tmp_path / "empty"
    assert "no results found" in write_leaderboard(empty, "csv").read_text()


def test_comparison_table_by_hand():
    rows = [
        {"metric": "LFW accuracy", "a": 0.9945, "b": 0.9982, "low": 0.0012, "high": 0.0061, "level": 0.95,
         "p_value": 0.00321, "test": "McNemar", "n": 6000},
        {"metric": "IJB-C TAR@1e-4", "a": 0.97, "b": 0.95, "diff": -0.02, "p_value": 3e-7, "test": "McNemar"},
        {"metric": "EER", "a": 0.1, "b": 0.1, "p_value": 0.5},
    ]
    df = comparison_table(rows, "sface", "arcface")
    col = "Δ (arcface − sface)"
    assert list(df.columns) == ["sface", "arcface", col, "interval", "p"]
    first = df.loc["LFW accuracy (n=6000)"]
    assert (first["sface"], first["arcface"], first[col], first["interval"], first["p"]) == (
        "99.45", "99.82", "+0.37", "[+0.12, +0.61]", "0.0032")
    assert df.loc["IJB-C TAR@1e-4", col] == "-2.00" and df.loc["IJB-C TAR@1e-4", "p"] == "<0.0001"
    assert df.loc["EER", "p"] == "0.500" and df.loc["EER", "interval"] == ""
    text = format_comparison(rows, "sface", "arcface")
    assert "| LFW accuracy (n=6000) | 99.45 | 99.82 | +0.37 | [+0.12, +0.61] | 0.0032 |" in text
    assert "McNemar" in text and "95%" in text


def test_conventions_table_by_hand():
    rows = [
        {"group": "accuracy", "convention": "best-threshold", "metric": "accuracy", "value": 0.9990},
        {"group": "accuracy", "convention": "kfold-grid", "metric": "accuracy", "value": 0.9982, "default": True},
        {"group": "tar", "convention": "nearest", "metric": "tar@far=1e-3", "value": 0.9960, "far": 0.00106,
         "threshold": 0.31234, "default": True},
        {"group": "tar", "convention": "strict", "metric": "tar@far=1e-3", "value": 0.9950, "far": 0.00099,
         "threshold": 0.31301, "note": "largest FAR <= target"},
    ]
    df = conventions_table(rows)
    assert list(df["convention"]) == ["best-threshold", "kfold-grid (default)", "nearest (default)", "strict"]
    assert list(df["value"]) == ["99.90", "99.82", "99.60", "99.50"]
    assert list(df["Δ vs default"]) == ["+0.08", "+0.00", "+0.00", "-0.10"]
    assert list(df["realised FAR"]) == ["", "", "1.06e-03", "9.90e-04"]
    assert list(df["threshold"]) == ["", "", "0.3123", "0.3130"]
    md = render(df, "md")
    assert md.splitlines()[0].startswith("| group | convention | metric | value |")  # no index column
    assert "| tar | strict | tar@far=1e-3 | 99.50 | -0.10 | 9.90e-04 | 0.3130 | largest FAR <= target |" in md


def test_report_imports_no_models():
    import fr_bench.report.plots as plots
    import fr_bench.report.tables as tables

    for mod in (tables, plots):
        src = open(mod.__file__, encoding="utf-8").read()
        assert "fr_bench.models" not in src and "fr_bench.extract" not in src


def test_headline_columns_of_identification_and_kface_protocols():
    recs = [
        rec("m", "kface", {"Q1/tar@far=1e-3": 0.91, "Q2/tar@far=0.001": 0.85, "Q1/accuracy": 0.99},
            display="K-FACE"),
        rec("m", "ijbc_1n", {"rank1": 0.95, "tpir@fpir=1e-2": 0.8, "G1/rank1": 0.96}, display="IJB-C 1:N"),
        rec("m", "megaface", {"rank1": 0.98, "tar@far=1e-6": 0.97}, display="MegaFace"),
        rec("m", "demo", {"accuracy": 1.0, "rank1": 1.0}, display="Demo"),
    ]
    df = leaderboard(recs)
    assert list(df.columns) == ["IJB-C 1:N rank-1", "IJB-C TPIR@1e-2", "MegaFace rank-1", "MegaFace TAR@1e-6",
                                "K-FACE Q1 TAR@1e-3", "K-FACE Q2 TAR@1e-3", "demo accuracy", "demo rank-1"]
    assert df.loc["m"].tolist() == ["95.00", "80.00", "98.00", "97.00", "91.00", "85.00", "100.00", "100.00"]
