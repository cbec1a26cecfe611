"""The metric-name vocabulary (fr_bench.metrics.names) and its users: the CLI table and the report tables agree."""

from __future__ import annotations

import ast
import math

import pytest

from fr_bench.metrics import names
from fr_bench.report.tables import headline_columns

# (target, name) written by hand
FAR_NAMES = [(1e-6, "1e-6"), (1e-4, "1e-4"), (0.001, "1e-3"), (0.01, "1e-2"), (0.1, "1e-1"), (1.0, "1e0"),
             (5e-3, "5e-3"), (2e-5, "2e-5"), (1.5e-4, "1.5e-4"), (0.25, "2.5e-1"), (0.0, "0")]


@pytest.mark.parametrize(("far", "expected"), FAR_NAMES)
def test_far_name_by_hand(far, expected):
    assert names.far_name(far) == expected
    if far > 0:
        assert float(expected) == far  # exact: two targets never share a name


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e-3])
def test_far_name_refuses_non_rates(bad):
    with pytest.raises(ValueError, match="target rate"):
        names.far_name(bad)


def test_builders_by_hand():
    assert names.tar_name(1e-4) == "tar@far=1e-4"
    assert names.tar_name(1e-3, "Q1") == "Q1/tar@far=1e-3"
    assert names.tpir_name(1e-2, "G1") == "G1/tpir@fpir=1e-2"
    assert names.rank_name(1) == "rank1" and names.rank_name(5, "G2") == "G2/rank5"
    assert names.at_name("merged_rate@far", 1e-3) == "merged_rate@far=1e-3"
    with pytest.raises(ValueError):
        names.rank_name(0)
    with pytest.raises(ValueError, match="unknown operating-point"):
        names.at_name("val@far", 1e-3)


@pytest.mark.parametrize(("name", "prefix", "kind", "param", "rate"), [
    ("accuracy", "", "accuracy", None, True),
    ("Q1/accuracy", "Q1", "accuracy", None, True),
    ("accuracy_std", "", "accuracy_std", None, True),
    ("accuracy_sem", "", "accuracy_sem", None, True),
    ("tar@far=1e-4", "", "tar@far", 1e-4, True),
    ("tar@far=0.0001", "", "tar@far", 1e-4, True),
    ("Q3/tar@far=1e-3", "Q3", "tar@far", 1e-3, True),
    ("G1/tpir@fpir=1e-2", "G1", "tpir@fpir", 1e-2, True),
    ("merged_rate@far=1e-3", "", "merged_rate@far", 1e-3, True),
    ("rank1", "", "rank", 1, True),
    ("G2/rank10", "G2", "rank", 10, True),
    ("eer", "", "eer", None, True),
    ("Q4/auc", "Q4", "auc", None, True),
    ("xnorm", "", "xnorm", None, False),
])
def test_parse_by_hand(name, prefix, kind, param, rate):
    parsed = names.parse(name)
    assert (parsed.prefix, parsed.kind) == (prefix, kind)
    assert parsed.param == param if not isinstance(param, float) else math.isclose(parsed.param, param)
    assert names.is_rate(name) is rate
    assert names.parse(parsed.name) == parsed  # the canonical spelling reads back the same


@pytest.mark.parametrize("name", ["", "rank0", "rank", "tar@far=", "tar@far=abc", "val@far=1e-3", "accuracy2",
                                  "tar@far=-1e-3", "G1/", "dprime"])
def test_unknown_names(name):
    assert names.parse(name) is None and names.is_rate(name) is False


def test_split_prefix_and_same_metric():
    assert names.split_prefix("G1/tpir@fpir=1e-2") == ("G1", "tpir@fpir=1e-2")
    assert names.split_prefix("rank1") == ("", "rank1")
    assert names.same_metric("tar@far=1e-4", "tar@far=0.0001")
    assert names.same_metric("Q1/tar@far=1e-3", "Q1/tar@far=1.0e-3")
    assert not names.same_metric("Q1/tar@far=1e-3", "Q2/tar@far=1e-3")
    assert not names.same_metric("tar@far=1e-3", "tpir@fpir=1e-3")
    assert not names.same_metric("rank1", "rank5")


def test_table_order_by_hand():
    shuffled = ["xnorm", "G1/rank1", "rank5", "tpir@fpir=1e-2", "zzz", "auc", "tar@far=1e-2", "eer",
                "accuracy_std", "tar@far=1e-4", "rank1", "accuracy", "G1/tpir@fpir=1e-1", "tpir@fpir=1e-3",
                "Q1/accuracy"]
    assert sorted(shuffled, key=names.sort_key) == [
        "accuracy", "accuracy_std", "tar@far=1e-4", "tar@far=1e-2", "eer", "auc", "rank1", "rank5",
        "tpir@fpir=1e-3", "tpir@fpir=1e-2", "xnorm", "zzz",
        "G1/rank1", "G1/tpir@fpir=1e-1", "Q1/accuracy"]


def test_protocols_name_targets_with_the_vocabulary():
    from fr_bench.protocols import scoring

    assert scoring.far_name is names.far_name


@pytest.mark.parametrize(("metric", "scale"), [("auc", 100.0), ("Q1/tar@far=1e-3", 100.0), ("eer", 100.0),
                                               ("merged_rate@far=1e-3", 100.0), ("xnorm", 1.0)])
def test_report_fallback_columns_scale_rates_by_the_vocabulary(metric, scale):
    ((key, _label, got),) = headline_columns("not_a_listed_protocol", [metric])
    assert key == metric and got == scale


def test_names_module_is_pure():
    """names.py imports nothing of fr_bench (every layer may import it)."""
    import fr_bench.metrics.names as module

    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.startswith("fr_bench")]


def test_cli_table_prints_rates_in_percent_in_table_order(capsys):
    from types import SimpleNamespace

    from fr_bench.cli_output import print_result

    metrics = {"xnorm": 25.5, "Q2/auc": 0.5, "G1/tpir@fpir=1e-2": 0.25, "accuracy": 0.75, "dprime": 3.0}
    ev = SimpleNamespace(
        result=SimpleNamespace(metrics=metrics, intervals={}, operating_points={}, conventions={}, flags=[]),
        record=SimpleNamespace(protocol={"display_name": "P"}, model={"name": "m", "format": "onnx",
                                                                      "embedding_size": 4},
                               fr_bench_version="0", extraction={"images": 1, "device": "cpu", "from_cache": True}),
        path=None)
    print_result(ev)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:7]]
    assert rows == [["accuracy", "(%)", "75.00"], ["xnorm", "25.5"], ["dprime", "3"],
                    ["G1/tpir@fpir=1e-2", "(%)", "25.00"], ["Q2/auc", "(%)", "50.00"]]
