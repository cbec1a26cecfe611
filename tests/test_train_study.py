"""The study: claim measures against independent computations, claim columns, and a small study end to end."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from fr_bench.train import claims
from fr_bench.train.study import StudyConfig, claim_columns, leaderboard_markdown, run_study
from train_fixtures import one_thread  # noqa: F401  (a fixture)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_pair_cosines_match_sklearn():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(7, 5)) * rng.uniform(0.5, 3, size=(7, 1))
    pairs = np.array([[0, 1], [2, 6], [3, 3], [5, 4]])
    want = cosine_similarity(f)[pairs[:, 0], pairs[:, 1]]
    np.testing.assert_allclose(claims.pair_cosines(f, pairs), want, rtol=1e-12)


def test_score_overlap_hand_cases():
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    assert claims.score_overlap(np.array([0.9, 0.8, 0.95, 0.1, 0.2, 0.0]), labels) == 0.0
    assert claims.score_overlap(np.array([0.1, 0.5, 0.9, 0.1, 0.5, 0.9]), labels) == pytest.approx(1.0)
    # one genuine of three falls among the impostors' bin range: two bins [0, .5), [.5, 1]
    s = np.array([0.9, 0.8, 0.1, 0.1, 0.2, 0.3])
    assert claims.score_overlap(s, labels, bins=2) == pytest.approx(1 / 3)


def test_norm_quality_correlation_is_pearson_of_ranks():
    rng = np.random.default_rng(1)
    q = rng.uniform(size=40)
    n = 3 * q + rng.normal(scale=0.5, size=40)
    rq, rn = np.argsort(np.argsort(q)), np.argsort(np.argsort(n))
    assert claims.norm_quality_correlation(n, q) == pytest.approx(np.corrcoef(rq, rn)[0, 1], rel=1e-12)
    assert np.isnan(claims.norm_quality_correlation(np.ones(5), np.arange(5.0)))
    with pytest.raises(ValueError):
        claims.norm_quality_correlation(np.ones(4), np.ones(5))


def test_class_accuracy_counts_head_and_tail():
    w = np.eye(4)
    counts = np.array([10, 8, 2, 1])                 # the two smallest classes, 2 and 3, are the tail
    feats = np.array([[1, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0.9, 0.2, 0], [0, 0, 0, 3],
                      [2, 0, 0, 1]])
    labels = np.array([0, 1, 2, 2, 3, 3])            # predicted 0, 1, 2, 1, 3, 0
    out = claims.class_accuracy(feats, labels, w, counts)
    assert (out["correct"], out["n"]) == (4, 6)
    assert (out["tail_correct"], out["tail_n"], out["head_correct"], out["head_n"]) == (2, 4, 2, 2)
    assert out["tail_accuracy"] == 0.5 and out["head_accuracy"] == 1.0 and out["tail_classes"] == 2
    # ties: among equal counts the higher class indices are the tail (the synthetic long tail's order)
    tied = claims.class_accuracy(feats, labels, w, np.array([3, 2, 2, 2]))
    assert (tied["tail_n"], tied["tail_correct"]) == (4, 2)  # classes 2, 3


def test_verification_summary_separable():
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.2])
    out = claims.verification_summary(s, np.array([1, 1, 1, 0, 0], bool))
    assert out == {"eer": 0.0, "accuracy": 1.0}


def _row(name, **kw):
    base = {"recipe": name, "head": name, "train_s": 1.0, "final_loss": 1.0, "synthetic_accuracy": 0.5,
            "synthetic_eer": 0.5, "demo_accuracy": 0.5, "demo_eer": 0.5, "overlap": 0.5, "norm_quality_rho": 0.0,
            "tail_accuracy": 0.5, "head_accuracy": 0.5}
    return {**base, **kw}


def test_claim_columns_compare_what_each_paper_compares():
    rows = [_row("cosface", overlap=0.30), _row("unpg_cosface", overlap=0.20), _row("softmax", tail_accuracy=0.25),
            _row("ir_cosface", tail_accuracy=0.40), _row("arcface", norm_quality_rho=0.1),
            _row("magface", norm_quality_rho=0.6), _row("groupface", ga_eer=0.1, cos_eer=0.125)]
    cols = claim_columns(rows)
    assert cols["unpg_cosface"]["UNPG: overlap vs base"] == "0.200 vs 0.300 (-0.100)"
    assert cols["ir_cosface"]["IR: tail acc vs softmax"] == "40.0% vs 25.0%"
    assert cols["magface"]["MagFace: rho(norm, quality)"] == "+0.60 (arcface +0.10)"
    assert cols["groupface"]["GroupFace: EER group-aware vs cosine"] == "10.00% vs 12.50%"
    assert cols["cosface"] == {} and cols["softmax"] == {}
    table = leaderboard_markdown(rows, StudyConfig())
    assert table.count("\n| ") == len(rows) and table.startswith("| recipe")
    assert "frbench study --backbone tinyface" in table


def test_small_study_end_to_end(tmp_path):
    from fr_bench.train.synthetic import write_test_protocol

    cfg = StudyConfig(input_size=32, embedding_size=16, steps=2, batch_size=8, recipes=("softmax", "ir_cosface",
                      "groupface"), train_data={"num_classes": 6, "images_per_class": 6, "image_size": 32,
                                                "imbalance": 1.0, "min_images": 2},
                      test_data={"num_classes": 4, "images_per_class": 3, "image_size": 32}, heldout_per_class=2,
                      extra_overrides={"model.backbone_kwargs": {"width": 4}})
    test_root = write_test_protocol(tmp_path / "test", seed=0, **cfg.test_data)
    from fr_bench.cli_train import study_evaluator  # the real evaluation path (GroupFace's claim goes through it)

    rows = run_study(cfg, tmp_path / "study", study_evaluator(test_root, tmp_path / "results", "cpu"),
                     test_root=test_root, progress=False, echo=lambda s: None)
    assert [r["recipe"] for r in rows] == ["softmax", "ir_cosface", "groupface"]
    for r in rows:
        assert 0.0 <= r["overlap"] <= 1.0 and -1.0 <= r["norm_quality_rho"] <= 1.0
        tail_correct, tail_n = r["tail_counts"]
        assert tail_n > 0 and r["tail_accuracy"] == tail_correct / tail_n
    assert {"ga_eer", "cos_eer"} <= set(rows[2]) and "ga_eer" not in rows[0]
    assert rows[2]["ga_eer"] == rows[2]["synthetic_eer"]  # the leaderboard row is the model's own score
    table = (tmp_path / "study" / "leaderboard.md").read_text()
    assert "IR: tail acc vs softmax" in table and "% vs " in table
    assert (tmp_path / "study" / "study.json").is_file()
    assert (tmp_path / "study" / "runs" / "groupface" / "checkpoint.pt").is_file()
