"""How pairs are compared: the score registry (``-c score=NAME``), and MagFace's kfold-angular on raw features.

Independent computations: scikit-learn's cosine_similarity, a negative-distance score written here, MagFace's
procedure applied by the metric function to the raw rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity
from writers import tiny_face, write_bin
from writers_fixtures import ijb_fixture, noisy_identity_embeddings

from fr_bench import similarity
from fr_bench.metrics import angular_kfold_accuracy
from fr_bench.protocols import load_protocol


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture
def neg_l2(monkeypatch):
    """A second registered score for the duration of a test: minus the Euclidean distance of the raw rows."""
    monkeypatch.setattr(similarity, "_REGISTRY", dict(similarity._REGISTRY))
    similarity.register_score("neg-l2", description="minus the Euclidean distance")(
        lambda a, b: -np.linalg.norm(a - b, axis=1))
    return similarity.get_score("neg-l2")


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    labels = np.tile(np.repeat([True, False], 10), 10)  # 200 pairs, 10 contiguous folds
    faces = [tiny_face(i) for i in range(2)]
    write_bin(root / "lfw.bin", [faces[i % 2] for i in range(2 * labels.size)], labels)
    return root, labels


def _pack_embeddings(labels, seed=0):
    """Pairs whose genuine sides share a direction, rows of very different norms around a common offset."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(labels.size, 6))
    b = np.where(labels[:, None], a + 0.9 * rng.normal(size=a.shape), rng.normal(size=a.shape))
    emb = np.empty((2 * labels.size, 6))
    emb[0::2], emb[1::2] = a, b
    emb *= rng.uniform(0.2, 40.0, size=(len(emb), 1))
    return emb + 3.0


def test_registry_basics():
    assert similarity.list_scores()[0] == "cosine" == similarity.DEFAULT_SCORE
    with pytest.raises(ValueError, match="unknown score 'nope'; registered scores: cosine"):
        similarity.get_score("nope")
    with pytest.raises(ValueError, match="already registered"):
        similarity.register_score("cosine", description="again")(lambda a, b: a[:, 0])
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    cos = similarity.get_score("cosine")
    np.testing.assert_allclose(cos.all_pairs(a, b), cosine_similarity(a, b), atol=1e-12)
    np.testing.assert_allclose(cos.pairs(a[:4], b), np.diag(cosine_similarity(a[:4], b)), atol=1e-12)


def test_a_registered_score_matrix_defaults_to_its_rows(neg_l2):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    expected = -np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(neg_l2.all_pairs(a, b), expected, atol=1e-12)


def test_pair_protocol_scores_with_the_chosen_score(pack, neg_l2):
    root, labels = pack
    p = load_protocol("lfw", root, expected_pairs=None)
    assert p.conventions["score"] == ["cosine", "group-aware", "neg-l2"]  # group-aware: a model's own score
    emb = _pack_embeddings(labels)
    r = _quiet(p.evaluate, emb, conventions={"score": "neg-l2"})
    assert r.conventions["score"] == "neg-l2" and r.details["score"].startswith("neg-l2 (minus the Euclidean")
    np.testing.assert_allclose(r.scores.pairs.scores, -np.linalg.norm(emb[0::2] - emb[1::2], axis=1), rtol=1e-6)
    default = _quiet(p.evaluate, emb)
    assert default.conventions["score"] == "cosine"
    np.testing.assert_allclose(default.scores.pairs.scores,
                               [cosine_similarity(x[None], y[None])[0, 0] for x, y in zip(emb[0::2], emb[1::2])],
                               atol=1e-6)


def test_ijb_verification_scores_templates_with_the_chosen_score(tmp_path, neg_l2):
    fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=False)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    r = _quiet(p.evaluate, emb, conventions={"score": "neg-l2", "pooling": "image-mean"})
    # by hand: image-mean pooling with the detector-score weight (the loader's defaults), then -||ta - tb||
    tids = np.asarray(fx.templates)
    det = np.asarray(fx.scores, dtype=np.float64)
    pooled = {t: (emb[tids == t] * det[tids == t, None]).sum(0) / (tids == t).sum() for t in np.unique(tids)}
    expected = [-np.linalg.norm(pooled[a] - pooled[b]) for a, b, _ in fx.pairs]
    np.testing.assert_allclose(r.scores.pairs.scores, expected, rtol=1e-4)
    assert r.conventions["score"] == "neg-l2"


@pytest.mark.parametrize("protocol", ["ijbc_1n", "megaface"])
def test_identification_protocols_offer_only_cosine_like_scores(tmp_path, neg_l2, protocol):
    if protocol == "ijbc_1n":
        fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
        p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    else:
        from writers_ijb import write_megaface_root

        write_megaface_root(tmp_path, ["A"] * 3 + ["B"] * 3, 10, sizes=(10,), write_images=False)
        p = load_protocol("megaface", tmp_path, distractors=10, check_counts=False, cleaned=False)
        emb = np.random.default_rng(0).normal(size=(16, 4))
    assert p.conventions["score"] == ["cosine"]
    with pytest.raises(ValueError, match="unknown 'score' convention 'neg-l2'; choose one of cosine"):
        p.evaluate(emb, conventions={"score": "neg-l2"})


def test_demo_rank1_needs_a_cosine_like_score(neg_l2):
    p = load_protocol("demo", None)
    emb = noisy_identity_embeddings(list(p.identities), noise=1.0)
    r = _quiet(p.evaluate, emb, conventions={"score": "neg-l2"})
    assert "rank1" not in r.metrics and any("rank1: not computed" in f for f in r.flags)
    assert "rank1" in _quiet(p.evaluate, emb).metrics


def test_kfold_angular_takes_the_raw_features(pack):
    """MagFace's eval_1v1.py subtracts the training folds' mean of the RAW features (its feature files keep the
    norm): the protocol must equal the metric applied to the raw rows, not to L2-normalised ones."""
    root, labels = pack
    p = load_protocol("lfw", root, expected_pairs=None)
    emb = _pack_embeddings(labels, seed=3)
    r = _quiet(p.evaluate, emb, conventions={"accuracy": "kfold-angular"})
    raw = angular_kfold_accuracy(emb[0::2], emb[1::2], labels, n_folds=10)
    assert r.metrics["accuracy"] == raw.mean
    np.testing.assert_array_equal(r.details["accuracy_folds"]["accuracies"], raw.fold_accuracies)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    normalised = angular_kfold_accuracy(unit[0::2], unit[1::2], labels, n_folds=10)
    assert not np.array_equal(normalised.fold_accuracies, raw.fold_accuracies)  # the fixture tells them apart
