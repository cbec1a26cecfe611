"""Which metrics each convention group moves in the conventions table: read through the one name vocabulary."""

from __future__ import annotations

import pytest

from fr_bench.results import ProtocolResult
from fr_bench.runner import _rows_of

METRICS = {"accuracy": 0.9, "accuracy_std": 0.01, "tar@far=1e-3": 0.8, "tar@far=0.0001": 0.7, "eer": 0.05,
           "auc": 0.99, "G1/rank1": 0.95, "G1/tpir@fpir=1e-2": 0.9, "merged_rate@far=1e-2": 0.9, "xnorm": 20.0,
           "val@far=1e-3": 0.5}


@pytest.mark.parametrize("group, expected", [
    ("accuracy", {"accuracy", "accuracy_std"}),
    ("tar", {"tar@far=1e-3", "tar@far=0.0001"}),  # any spelling of the target; "val@" is no metric of ours
    ("1n", {"G1/rank1", "G1/tpir@fpir=1e-2", "merged_rate@far=1e-2"}),
    ("pooling", set(METRICS)),
    ("flip", set(METRICS)),
    ("some_new_group", set(METRICS)),
])
def test_group_rows(group, expected):
    res = ProtocolResult(protocol="p", metrics=dict(METRICS), operating_points={"tar@far=1e-3": {"far": 9e-4}})
    rows = _rows_of(res, group, "conv", True, set())
    assert {r["metric"] for r in rows} == expected
    assert all(r["group"] == group and r["convention"] == "conv" for r in rows)
    far = {r["metric"]: r["far"] for r in rows}
    if "tar@far=1e-3" in far:
        assert far["tar@far=1e-3"] == 9e-4
