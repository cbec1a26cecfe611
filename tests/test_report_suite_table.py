"""The suite paper table (``frbench leaderboard --suite``): the papers' columns in member order, one row per model,
empty cells footnoted, rows of different data or conventions never ranked together, Markdown / CSV / LaTeX."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from fr_bench.cli import main
from fr_bench.protocols.base import ProtocolResult
from fr_bench.report.leaderboard import leaderboard, leaderboard_values, render, suite_columns, write_leaderboard
from fr_bench.results import StoredResult, write_result
from fr_bench.suites import load_suite

H1, H2 = "a" * 64, "b" * 64
PAIR_SETS = {"lfw": "LFW", "cfp_fp": "CFP-FP", "agedb_30": "AgeDB-30", "calfw": "CALFW", "cplfw": "CPLFW"}
QUICK = list(PAIR_SETS.values())
FULL = QUICK + ["IJB-B 1e-4", "IJB-C 1e-4", "IJB-B 1:N rank-1", "IJB-B TPIR@1e-2", "IJB-C 1:N rank-1",
                "IJB-C TPIR@1e-2"]


def rec(model, protocol, metrics, *, conventions=None, data_hash=H1, flags=()):
    return StoredResult(model={"name": model},
                        protocol={"name": protocol, "display_name": protocol, "data": {"combined": data_hash}},
                        result=ProtocolResult(protocol, dict(metrics), conventions=conventions or {"acc": "kfold-grid"},
                                              flags=list(flags)))


def fixture_records():
    """Three models; 'gamma' lacks CALFW and every IJB result; IJB keys spelled two ways (1e-4 and 0.0001)."""
    out = []
    for k, model in enumerate(("alpha", "beta", "gamma")):
        for j, proto in enumerate(PAIR_SETS):
            if model == "gamma" and proto == "calfw":
                continue
            out.append(rec(model, proto, {"accuracy": 0.9 + 0.01 * k + 0.001 * j, "accuracy_std": 0.01}))
        if model != "gamma":
            out.append(rec(model, "ijbb", {"tar@far=1e-4": 0.91 + 0.01 * k, "tar@far=1e-5": 0.8},
                           conventions={"tar": "nearest"}))
            out.append(rec(model, "ijbc", {"tar@far=0.0001": 0.93 + 0.01 * k, "tar@far=1e-6": 0.7},
                           conventions={"tar": "nearest"}))
            out.append(rec(model, "ijbb_1n", {"rank1": 0.8 + k / 100, "tpir@fpir=0.01": 0.6}, conventions={"1n": "n"}))
            out.append(rec(model, "ijbc_1n", {"rank1": 0.85, "tpir@fpir=1e-2": 0.65 + k / 100},
                           conventions={"1n": "n"}))
    out.append(rec("alpha", "megaface", {"rank1": 0.98}))  # not in any suite: never shown
    return out


def _expected(records, model, protocol, key):
    r = next(r for r in records if r.model_name == model and r.protocol_name == protocol)
    return f"{100 * r.result.metrics[key]:.2f}"


def test_quick_and_full_columns_in_member_order_and_values():
    recs = fixture_records()
    quick = leaderboard(recs, suite="quick")
    assert list(quick.columns) == QUICK
    assert [m.protocol for m in load_suite("quick").members] == list(PAIR_SETS)  # the order comes from the suite
    assert list(quick.index) == ["alpha", "beta", "gamma"]
    for model in quick.index:
        for proto, label in PAIR_SETS.items():
            if (model, proto) != ("gamma", "calfw"):
                assert quick.loc[model, label] == _expected(recs, model, proto, "accuracy")
    full = leaderboard(recs, suite="full")
    assert list(full.columns) == FULL  # IJB-C: one column (1e-4), not the leaderboard's three
    assert full.loc["beta", "IJB-B 1e-4"] == _expected(recs, "beta", "ijbb", "tar@far=1e-4")
    assert full.loc["beta", "IJB-C 1e-4"] == _expected(recs, "beta", "ijbc", "tar@far=0.0001")
    assert full.loc["alpha", "IJB-B TPIR@1e-2"] == _expected(recs, "alpha", "ijbb_1n", "tpir@fpir=0.01")
    assert full.loc["beta", "IJB-C TPIR@1e-2"] == _expected(recs, "beta", "ijbc_1n", "tpir@fpir=1e-2")
    values = leaderboard_values(recs, suite="full")
    assert list(values.columns) == FULL
    assert values.loc["alpha", "IJB-C 1e-4"] == pytest.approx(93.0)
    assert all(full.attrs["comparable"].values())
    assert "MegaFace rank-1" not in full.columns


def test_missing_members_are_empty_and_footnoted():
    recs = fixture_records()
    full = leaderboard(recs, suite="full")
    assert full.loc["gamma", "CALFW"] == "" and full.loc["gamma", "IJB-C 1e-4"] == ""
    note = next(n for n in full.attrs["footnotes"] if n.startswith("empty cell"))
    assert "(CALFW: gamma;" in note and "; IJB-B 1e-4: gamma;" in note and "; LFW:" not in note and "(LFW:" not in note
    # a member without any result keeps its column, empty, and says so
    quick_only = [r for r in recs if r.protocol_name in PAIR_SETS]
    table = leaderboard(quick_only, suite="full")
    assert list(table.columns) == FULL and (table["IJB-B 1e-4"] == "").all()
    assert "no stored result for any model: " + ", ".join(FULL[5:]) in table.attrs["footnotes"]


def test_mixed_conventions_and_data_are_marked_and_never_ranked():
    recs = fixture_records()
    recs = [r for r in recs if not (r.model_name == "beta" and r.protocol_name in ("ijbc", "lfw"))]
    recs.append(rec("beta", "ijbc", {"tar@far=1e-4": 0.95}, conventions={"tar": "interpolated"}))
    recs.append(rec("beta", "lfw", {"accuracy": 0.999}, data_hash=H2))
    table = leaderboard(recs, suite="full")
    assert table.loc["alpha", "IJB-C 1e-4"].endswith(" §B") and table.loc["beta", "IJB-C 1e-4"] == "95.00 §A"
    assert table.loc["beta", "LFW"] == "99.90 †B" and table.loc["alpha", "LFW"].endswith(" †A")
    assert table.attrs["comparable"]["IJB-C 1e-4"] is False and table.attrs["comparable"]["LFW"] is False
    assert table.attrs["comparable"]["CFP-FP"] is True and "§" not in table.loc["alpha", "IJB-B 1e-4"]
    notes = table.attrs["footnotes"]
    assert any("different conventions" in n and "§A = tar = interpolated (beta)" in n for n in notes)
    assert any("different data" in n for n in notes)
    for column in ("IJB-C 1e-4", "LFW"):
        with pytest.raises(ValueError, match="refusing to rank"):
            leaderboard(recs, suite="full", sort_by=column)
    ranked = leaderboard(recs, suite="full", sort_by="CFP-FP")  # comparable: best first, missing last
    values = leaderboard_values(recs, suite="full")["CFP-FP"]
    assert list(ranked.index) == list(values.sort_values(ascending=False).index)


def test_renders_md_csv_latex():
    recs = fixture_records()
    table = leaderboard(recs, suite="quick")
    md = render(table, "md").splitlines()
    assert md[0] == "| model | " + " | ".join(QUICK) + " |"
    row = "| gamma | " + " | ".join("" if p == "calfw" else _expected(recs, "gamma", p, "accuracy")
                                    for p in PAIR_SETS) + " |"
    assert row in md
    back = pd.read_csv(io.StringIO(render(table, "csv")), comment="#", index_col="model", keep_default_na=False,
                       dtype=str)
    assert list(back.columns) == QUICK and back.loc["gamma", "CALFW"] == ""
    assert back.loc["alpha", "LFW"] == _expected(recs, "alpha", "lfw", "accuracy")
    tex = render(table, "latex")
    assert "\\begin{tabular}{lrrrrr}" in tex and "AgeDB-30" in tex


def test_suite_objects_fallbacks_and_errors(tmp_path):
    recs = fixture_records() + [rec("alpha", "newset", {"rank1": 0.5})]
    custom = SimpleNamespace(members=[SimpleNamespace(protocol="cplfw"), SimpleNamespace(protocol="newset")])
    table = leaderboard(recs, suite=custom)
    assert list(table.columns) == ["CPLFW", "newset rank1"] and table.loc["alpha", "newset rank1"] == "50.00"
    assert suite_columns(custom, {"newset": ["rank1"]})[0] == ("cplfw", "accuracy", "CPLFW", 100.0)
    with pytest.raises(ValueError, match="either suite= or protocols="):
        leaderboard(recs, ["lfw"], suite="quick")
    with pytest.raises(ValueError, match="unknown suite 'nosuch'"):
        leaderboard(recs, suite="nosuch")
    for r in recs:
        write_result(tmp_path, r)
    path = write_leaderboard(tmp_path, "csv", suite="quick")
    assert path.read_text().splitlines()[0] == ",".join(f'"{c}"' for c in ["model", *QUICK])


def test_cli_suite_table(tmp_path):
    for r in fixture_records():
        write_result(tmp_path, r)
    runner = CliRunner()
    result = runner.invoke(main, ["leaderboard", str(tmp_path), "--suite", "full", "--format", "md"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "| model | " + " | ".join(FULL) + " |"
    bad = runner.invoke(main, ["leaderboard", str(tmp_path), "--suite", "nosuch"])
    assert bad.exit_code != 0 and "unknown suite" in bad.output and "Traceback" not in bad.output
