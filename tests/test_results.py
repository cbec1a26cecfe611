"""The results store: JSON round trip, atomic writes, loading with junk around, ROC downsampling."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from fr_bench import results as results_mod
from fr_bench.protocols.base import ProtocolResult
from fr_bench.results import (
    SCHEMA_VERSION,
    ResultFormatError,
    ResultsWarning,
    SUITE_RECORD_KIND,
    StoredResult,
    downsample_roc,
    load_results,
    read_result,
    result_path,
    safe_name,
    write_result,
)


def make_record(model="sface", protocol="lfw", accuracy=0.9982, **extra):
    result = ProtocolResult(
        protocol=protocol,
        metrics={"accuracy": accuracy, "accuracy_std": 0.002, "tar@far=1e-6": float("nan")},
        conventions={"accuracy": "kfold-grid", "tar": "nearest"},
        operating_points={"tar@far=1e-6": {"target": 1e-6, "far": float("nan"), "threshold": 0.5, "tar": math.nan}},
        intervals={"accuracy": {"low": 0.9971, "high": 0.999, "level": 0.95, "unit": "fraction", "n_boot": 1000}},
        details={"roc": {"far": np.array([0.0, 0.5, 1.0]), "tar": np.array([0.5, 0.9, 1.0])}},
        flags=["TAR@FAR=1e-6 unresolvable with 3000 impostor pairs"],
        provenance={"seed": 0},
        scores={"scores": np.arange(3.0)},
    )
    return StoredResult(
        model={"name": model, "spec": "x.onnx", "format": "onnx", "embedding_size": np.int64(128)},
        protocol={"name": protocol, "display_name": protocol.upper(), "data": {"combined": "ab" * 32}},
        result=result,
        extraction={"device": "cpu", "images": 12, "seconds": np.float32(1.5), "images_per_s": float("inf")},
        timings={"extract": 1.5},
        **extra,
    )


def _strict_loads(text):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_round_trip_nan_becomes_null_and_back():
    rec = make_record(scores_file="cache/lfw_scores.h5")
    rec.protocol["root"] = Path("/data/lfw")  # paths are stored as strings
    text = rec.to_json()
    data = _strict_loads(text)  # strict JSON: no NaN / Infinity tokens
    assert data["schema"] == SCHEMA_VERSION
    assert data["result"]["metrics"]["tar@far=1e-6"] is None
    assert data["result"]["operating_points"]["tar@far=1e-6"]["far"] is None
    assert data["extraction"]["images_per_s"] is None
    assert data["model"]["embedding_size"] == 128
    assert data["protocol"]["root"] == "/data/lfw"
    assert data["conventions"] == {"accuracy": "kfold-grid", "tar": "nearest"}
    assert "scores" not in data["result"]
    assert data["result"]["details"]["roc"]["tar"] == [0.5, 0.9, 1.0]

    back = StoredResult.from_json(text)
    assert math.isnan(back.result.metrics["tar@far=1e-6"])
    assert math.isnan(back.result.operating_points["tar@far=1e-6"]["far"])
    assert back.result.operating_points["tar@far=1e-6"]["threshold"] == 0.5
    assert back.result.metrics["accuracy"] == 0.9982
    assert back.result.intervals == rec.result.intervals
    assert back.model_name == "sface" and back.protocol_name == "lfw" and back.display_name == "LFW"
    assert back.data_hash == "ab" * 32
    assert back.flags == rec.flags and back.conventions == rec.conventions
    assert back.scores_file == "cache/lfw_scores.h5"
    assert back.created == rec.created and back.created.endswith("+00:00")
    assert back.to_json() == text  # stable


def test_required_fields_and_schema_checks():
    with pytest.raises(ValueError, match="name"):
        StoredResult(model={}, protocol={"name": "lfw"}, result=ProtocolResult("lfw", {}))
    data = _strict_loads(make_record().to_json())
    data["schema"] = SCHEMA_VERSION + 1
    with pytest.raises(ResultFormatError, match="newer"):
        StoredResult.from_dict(data, source="x.json")
    del data["schema"]
    with pytest.raises(ResultFormatError, match="x.json.*schema"):
        StoredResult.from_dict(data, source="x.json")


def test_safe_name_never_collides():
    assert safe_name("sface") == "sface"
    assert safe_name("arcface-r100@ms1mv3") == "arcface-r100@ms1mv3"
    a, b = safe_name("models/sface.onnx"), safe_name("models_sface.onnx")
    assert a != b and "/" not in a and a.startswith("models_sface.onnx-")
    assert not safe_name("../evil").startswith(".")
    assert "/" not in safe_name("../evil")


def test_write_result_path_and_read_back(tmp_path):
    rec = make_record(model="models/sface.onnx")
    path = write_result(tmp_path, rec)
    assert path == result_path(tmp_path, "models/sface.onnx", "lfw")
    assert path.parent.parent == tmp_path and path.name == "lfw.json"
    back = read_result(path)
    assert back.model_name == "models/sface.onnx" and back.source == path
    assert [p.name for p in path.parent.iterdir()] == ["lfw.json"]  # no temporary file left


def test_failed_serialisation_leaves_old_file_intact(tmp_path):
    path = write_result(tmp_path, make_record(accuracy=0.5))
    before = path.read_bytes()
    bad = make_record(accuracy=0.9)
    bad.model["weights"] = object()  # not JSON-serialisable
    with pytest.raises(TypeError, match="cannot store a object"):
        write_result(tmp_path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["lfw.json"]


def test_write_is_atomic_no_partial_file_visible(tmp_path, monkeypatch):
    path = write_result(tmp_path, make_record(accuracy=0.5))
    before = path.read_bytes()
    seen = []
    real_fsync = os.fsync

    def spying_fsync(fd):
        seen.append(path.read_bytes())  # while the new bytes are being flushed, the target is still the old file
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    write_result(tmp_path, make_record(accuracy=0.75))
    assert seen and seen[0] == before
    assert read_result(path).result.metrics["accuracy"] == 0.75

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_result(tmp_path, make_record(accuracy=0.25))
    assert read_result(path).result.metrics["accuracy"] == 0.75
    assert sorted(p.name for p in path.parent.iterdir()) == ["lfw.json"]


def test_load_results_skips_junk_with_warnings_naming_files(tmp_path):
    write_result(tmp_path, make_record(model="b", protocol="lfw"))
    write_result(tmp_path, make_record(model="a", protocol="cfp_fp"))
    write_result(tmp_path, make_record(model="a", protocol="agedb_30"))
    (tmp_path / "broken.json").write_text('{"schema": 1, ')
    (tmp_path / "a" / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"hello": "world"}')
    newer = _strict_loads(make_record(model="c").to_json())
    newer["schema"] = SCHEMA_VERSION + 5
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    (tmp_path / "notes.txt").write_text("ignored: not json")
    (tmp_path / "a" / "suite-quick.json").write_text(json.dumps({"kind": SUITE_RECORD_KIND, "members": {}}))

    with pytest.warns(ResultsWarning) as caught:
        records = load_results(tmp_path)
    assert [(r.model_name, r.protocol_name) for r in records] == [("a", "agedb_30"), ("a", "cfp_fp"), ("b", "lfw")]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4  # the suite record is passed by silently: it ties results together, is not one
    for name, why in [("broken.json", "invalid JSON"), ("list.json", "JSON object"), ("other.json", "schema"),
                      ("newer.json", "newer")]:
        assert any(name in m and why in m for m in messages), (name, messages)
    assert load_results(tmp_path / "nothing-here") == []


def test_read_result_errors_name_the_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{\n  nope")
    with pytest.raises(ResultFormatError, match=r"x\.json:2: invalid JSON"):
        read_result(path)


# ------------------------------------------------------------------------------------------------ downsample_roc


def _strict_tar(far, tar, target):
    """TAR at the largest FAR not above target (brute force over the full curve)."""
    ok = far <= target
    return tar[ok].max() if ok.any() else np.nan


def test_downsample_roc_small_curve_unchanged():
    far, tar, thr = [0.0, 0.1, 1.0], [0.2, 0.8, 1.0], [2.0, 0.5, -1.0]
    out = downsample_roc(far, tar, thr, max_points=10)
    assert out["far"].tolist() == far and out["tar"].tolist() == tar and out["thresholds"].tolist() == thr


def test_downsample_roc_keeps_endpoints_and_strict_corners():
    rng = np.random.default_rng(1)
    n_pos, n_neg = 2_000, 200_000
    scores = np.r_[rng.normal(2.0, 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)]
    labels = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    from sklearn.metrics import roc_curve

    far, tar, thr = roc_curve(labels, scores, drop_intermediate=False)
    assert far.size > 1000
    out = downsample_roc(far, tar, thr, max_points=200)
    kf, kt = out["far"], out["tar"]
    assert 100 < kf.size <= 200
    assert (kf[0], kt[0], kf[-1], kt[-1]) == (far[0], tar[0], far[-1], tar[-1])
    assert np.all(np.diff(kf) >= 0)
    # every kept point is an original point (far, tar, threshold together)
    idx = np.searchsorted(thr[::-1], out["thresholds"][::-1])
    assert np.array_equal(thr[::-1][idx], out["thresholds"][::-1])
    # the best TAR at FAR 0 survives
    assert kt[kf == 0].max() == tar[far == 0].max()
    # at every kept positive FAR, the kept TAR is the strict TAR of the full curve there (an upper corner)
    for f, t in zip(kf[kf > 0], kt[kf > 0]):
        assert t == _strict_tar(far, tar, f)
    # spread evenly in log-FAR: between two consecutive kept FARs a < b, the full curve has no FAR value more than
    # one grid step below b (else a log-spaced target would have picked it); gaps only where the curve has none
    step = (np.log10(far[-1]) - np.log10(far[far > 0][0])) / (200 - 4)
    positive = kf[kf > 0]
    assert np.diff(np.log10(positive)).max() > 2 * step  # the low-FAR end has real gaps (1/n, 2/n, ...)
    for a, b in zip(positive[:-1], positive[1:]):
        inner = far[(far > a) & (far < b)]
        assert np.all(np.log10(b) - np.log10(inner) <= step * (1 + 1e-9)), (a, b, inner[:3])


def test_downsample_roc_rejects_bad_input():
    with pytest.raises(ValueError, match="non-decreasing"):
        downsample_roc([0.0, 0.5, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one length"):
        downsample_roc([0.0, 0.5], [0.1])
    with pytest.raises(ValueError, match="empty"):
        downsample_roc([], [])


def test_results_module_imports_no_models():
    src = open(results_mod.__file__, encoding="utf-8").read()
    assert "fr_bench.models" not in src and "fr_bench.extract" not in src


# ------------------------------------------------------------------------------------------ typed score records


def _records():
    from fr_bench.results import PairScores, ScoreRecords, SearchScores

    pairs = PairScores(np.array([0.5, -0.25, 0.125]), [1, 0, 1], [0, 1, 2], [0, 2, 2], "subject",
                       folds=[0, 0, 1], correct=[True, False, True], extra={"template_a": np.arange(3, dtype=np.int32)})
    searches = {"G1/rank1": SearchScores.from_outcomes([True, False, True, True], [0, 0, 1, 2], "subject",
                                                       counted=[True, True, False, True],
                                                       extra={"mate_rank": np.array([1, 3, 0, 1], np.int32)})}
    return ScoreRecords(pairs, searches, {"probe_template": np.array([7, 8, 9, 10], np.int32)})


def test_score_records_round_trip_through_hdf5(tmp_path):
    from fr_bench.results import load_scores, read_scores, save_scores

    rec = _records()
    path = save_scores(tmp_path, {"model": "m", "protocol": "p"}, rec)
    back, _ = read_scores(path)
    p, q = rec.pairs, back.pairs
    for name in ("scores", "labels", "unit_a", "unit_b", "folds", "correct"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
        assert getattr(q, name).dtype == getattr(p, name).dtype
    assert q.unit_name == "subject" and q.extra["template_a"].dtype == np.int32
    s = back.searches["G1/rank1"]  # a metric name with a slash survives
    np.testing.assert_array_equal(s.successes, [1, 0, 0, 1])
    np.testing.assert_array_equal(s.trials, [1, 1, 0, 1])
    assert s.rate == 2 / 3 and s.per_search and s.unit_name == "subject"
    np.testing.assert_array_equal(back.extra["probe_template"], [7, 8, 9, 10])
    assert load_scores(tmp_path, {"model": "m", "protocol": "p"}) is not None
    assert load_scores(tmp_path, {"model": "other", "protocol": "p"}) is None


@pytest.mark.parametrize("build,match", [
    (lambda R: R.PairScores([0.1, 0.2], [1, 0], [0], [0, 1]), "one entry per pair"),
    (lambda R: R.PairScores([0.1, 0.2], [1, 0], [0, 1], [0, 1], folds=[0]), "one entry per pair"),
    (lambda R: R.SearchScores([2, 0], [1, 1], [0, 1]), r"successes must lie in \[0, trials\]"),
    (lambda R: R.SearchScores([1, 0], [1, 1], [0]), "one entry per search"),
], ids=["units", "folds", "successes", "search-units"])
def test_score_records_refuse_misshapen_arrays(build, match):
    from fr_bench import results as R

    with pytest.raises(ValueError, match=match):
        build(R)


def test_the_one_json_encoder():
    from dataclasses import dataclass

    from fr_bench.results import to_jsonable

    @dataclass
    class Point:
        far: float
        n: np.int64

    value = {"a": np.float32(0.5), "b": np.array([1.0, np.nan, np.inf]), 3: (np.bool_(True), Path("x/y")),
             "p": Point(float("nan"), np.int64(4))}
    out = to_jsonable(value)
    assert out == {"a": 0.5, "b": [1.0, None, None], "3": [True, "x/y"], "p": {"far": None, "n": 4}}
    json.dumps(out, allow_nan=False)
