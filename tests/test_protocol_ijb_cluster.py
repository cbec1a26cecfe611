"""The IJB-B clustering loader on tiny fixtures in the release layout (tests/writers_cluster.py): CSVs read by header
name, subjects from the ground truth or the list, templates pooled as 1:1 verification (checked against a pooling
written out here by hand), the 1:1 pairs for the default threshold, and every bad input named by file and line."""

from __future__ import annotations

import numpy as np
import pytest
from writers_cluster import write_cluster_list, write_csv, write_ground_truth
from writers_ijb import write_ijb_release

from fr_bench.cli_cluster import _choose_threshold, record_name
from fr_bench.protocols import ProtocolError, load_protocol

LIST1 = "ijbb_clustering_32_hint_100.csv"
GT = "ijbb_clustering_test7_ground_truth.csv"
# 8 images: template 11 (media 1, 1, 2), 12 (media 3), 13 (media 4, 4), 14 (media 5, 6)
TEMPLATES = [11, 11, 11, 12, 13, 13, 14, 14]
MEDIAS = [1, 1, 2, 3, 4, 4, 5, 6]
PAIRS = [(11, 12, 1), (11, 13, 0), (12, 14, 0), (13, 14, 1)]
SUBJECT = {11: 7, 12: 7, 13: 9, 14: 9}


@pytest.fixture
def release(tmp_path):
    fx = write_ijb_release(tmp_path, "ijbb", TEMPLATES, MEDIAS, PAIRS)
    write_cluster_list(tmp_path / "meta" / LIST1, [14, 11, 12, 11, 13])  # template 11 on two rows
    write_ground_truth(tmp_path / "meta" / GT, SUBJECT)
    return fx


def _load(root, **options):
    return load_protocol("ijbb_cluster", root, check_counts=False, **options)


def _hand_pooled(fx, emb):
    """insightface eval_ijbc.py by hand: image feature x detector score, mean per media, sum over media, L2."""
    feats = {}
    for t in sorted(set(TEMPLATES)):
        total = np.zeros(emb.shape[1])
        for m in sorted({m for tt, m in zip(TEMPLATES, MEDIAS) if tt == t}):
            idx = [i for i, (tt, mm) in enumerate(zip(TEMPLATES, MEDIAS)) if tt == t and mm == m]
            total += np.mean([emb[i] * float(fx.scores[i]) for i in idx], axis=0)
        feats[t] = total / np.linalg.norm(total)
    return feats


def test_items_are_the_lists_templates_pooled_as_verification(release):
    proto = _load(release.root)
    emb = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    items = proto.cluster_items(emb)
    assert items.keys == ["14", "11", "12", "13"] and items.item_kind == "template"
    assert items.labels.tolist() == [9, 7, 7, 9]
    hand = _hand_pooled(release, emb.astype(np.float64))
    np.testing.assert_allclose(items.features, np.stack([hand[t] for t in (14, 11, 12, 13)]), atol=1e-5)
    expected = [hand[a] @ hand[b] for a, b, _ in PAIRS]
    np.testing.assert_allclose(items.pair_scores, expected, atol=1e-5)
    assert items.pair_labels.tolist() == [True, False, False, True]
    assert "ijbb_template_pair_label.txt" in items.pairs_source
    assert proto.n_rows == 5 and any("5 rows for 4 templates" in f for f in proto.load_flags)
    assert any("2 subjects, where the file name says 32" in f for f in proto.load_flags)
    assert record_name("ijbb_cluster", proto) == "ijbb_cluster-list1-clustering"
    assert {str(release.root / "meta" / LIST1), str(release.root / "meta" / GT)} <= set(proto.data_files)


def test_subject_id_in_the_list_needs_no_ground_truth(tmp_path):
    write_ijb_release(tmp_path, "ijbb", TEMPLATES, MEDIAS, PAIRS)
    write_cluster_list(tmp_path / "clustering_protocols" / "test7_clustering" / LIST1, [11, 12, 13],
                       subjects=[1, 1, 2], header=("TEMPLATE_ID", "FILENAME"))
    items = _load(tmp_path).cluster_items(np.ones((8, 3)) + np.eye(8, 3))
    assert items.keys == ["11", "12", "13"] and items.labels.tolist() == [1, 1, 2]


def test_list_option_and_explicit_files(release, tmp_path):
    other = write_cluster_list(tmp_path / "mine.csv", [12, 13], subjects=[5, 6])
    proto = _load(release.root, list=2, list_file=str(other))
    assert proto.variant == "list2" and proto.template_ids.tolist() == [12, 13]
    with pytest.raises(ProtocolError, match=r"list=8 must be one of 1\.\.7"):
        _load(release.root, list=8)
    with pytest.raises(ProtocolError, match=r"list='x' must be a number 1\.\.7"):
        _load(release.root, list="x")
    with pytest.raises(ProtocolError, match=r"ijbb_clustering_64_hint_100\.csv not found under .*test7_clustering"):
        _load(release.root, list=2)


def test_without_the_pair_file_the_default_threshold_asks_for_one(release):
    (release.root / "meta" / "ijbb_template_pair_label.txt").unlink()
    items = _load(release.root).cluster_items(np.random.default_rng(1).normal(size=(8, 4)))
    assert items.pair_scores is None and "no IJB-B 1:1 template pair file" in items.pairs_source
    with pytest.raises(ValueError, match=r"pass --threshold T"):
        _choose_threshold(items, threshold=None, do_sweep=False, method="agglomerative", criterion="bcubed_f",
                          min_samples=5)
    clustering, info, flags = _choose_threshold(items, threshold=0.3, do_sweep=False, method="agglomerative",
                                                criterion="bcubed_f", min_samples=5)
    assert info["rule"].startswith("given") and not flags and clustering.threshold == 0.3


def test_evaluate_is_not_offered(release):
    with pytest.raises(ProtocolError, match="frbench cluster -p ijbb_cluster"):
        _load(release.root).evaluate(np.ones((8, 3)))


def test_evaluate_model_refuses_before_extraction(release, monkeypatch):
    from fr_bench import runner

    monkeypatch.setattr(runner._extract, "extract", lambda *a, **k: pytest.fail("extracted before refusing"))
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    with pytest.raises(ProtocolError, match="frbench cluster -p ijbb_cluster"):
        runner.evaluate_model("any-model", "ijbb_cluster", release.root, protocol_options={"check_counts": False})


@pytest.mark.parametrize(("content", "line", "message"), [
    ("FILENAME,SUBJECT_ID\nimg/1.jpg,3\n", 1, r"no column TEMPLATE_ID in the header line \['FILENAME', 'SUBJECT_ID'\]"),
    ("11,img/1.jpg\n12,img/2.jpg\n", 1, r"no column TEMPLATE_ID"),  # no header at all
    ("TEMPLATE_ID,FILENAME\n11,img/1.jpg\nabc,img/2.jpg\n", 3, r"TEMPLATE_ID should be an integer, found 'abc'"),
    ("TEMPLATE_ID,FILENAME\n11,a.jpg\n99,b.jpg\n", 3, r"template 99 has no SUBJECT_ID in .*ground_truth\.csv"),
    ("TEMPLATE_ID,FILENAME\n11,a.jpg\n12,b.jpg\n", None, None),  # fine
])
def test_bad_lists_name_file_and_line(release, content, line, message):
    path = release.root / "meta" / LIST1
    path.write_text(content)
    if message is None:
        assert _load(release.root).template_ids.tolist() == [11, 12]
        return
    with pytest.raises(ProtocolError, match=rf"^{path}:{line}: .*{message}"):
        _load(release.root)


def test_unknown_template_names_the_list_line(release):
    path = write_cluster_list(release.root / "meta" / LIST1, [11, 12, 55], subjects=[1, 1, 2])
    with pytest.raises(ProtocolError, match=rf"^{path}:4: template 55 has no image in .*ijbb_face_tid_mid\.txt"):
        _load(release.root)


def test_a_template_with_two_subjects_is_refused(release):
    path = write_cluster_list(release.root / "meta" / LIST1, [11, 12, 11], subjects=[1, 1, 2])
    with pytest.raises(ProtocolError, match=rf"^{path}:4: template 11 has SUBJECT_ID 2 here but 1 on line 2"):
        _load(release.root)
    gt = write_csv(release.root / "meta" / GT, ("SUBJECT", "TEMPLATE_ID"), [[1, 11]])
    write_cluster_list(release.root / "meta" / LIST1, [11])
    with pytest.raises(ProtocolError, match=rf"^{gt}:1: clustering ground truth: no column SUBJECT_ID"):
        _load(release.root)
