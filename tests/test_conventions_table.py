"""The side-by-side conventions table (``frbench conventions``) for a fixture of every protocol family.

Each group's conventions are applied alone to the same embeddings; the rows must carry every convention the protocol
accepts (extraction-time groups need the images and are left out here), and the numbers are checked against
computations written here from the fixture's embeddings: scikit-learn's ROC for every TAR reading, a brute-force
best threshold, insightface's 10-fold grid procedure by hand, template pooling and gallery searches by hand.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_curve
from writers import write_lfw
from writers_fixtures import ijb_fixture, noisy_identity_embeddings
from writers_ijb import kface_path, write_kface_root, write_megaface_root

from fr_bench.metrics import angular_kfold_accuracy, pair_accuracy
from fr_bench.protocols import load_protocol
from fr_bench.protocols.conventions import EXTRACTION_GROUPS
from fr_bench.report.tables import conventions_table, render
from fr_bench.runner import conventions_rows
from fr_bench.similarity import score_applies


def _rows(protocol, emb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = conventions_rows(protocol, emb)
    assert rows
    for group, names in protocol.conventions.items():
        if group in EXTRACTION_GROUPS:  # re-embedding needed: shown only with the images (runner.prepare)
            continue
        seen = {r["convention"] for r in rows if r["group"] == group}
        names = [n for n in names if group != "score" or score_applies(n)]  # not another model's own score
        assert seen == set(names), (group, seen, names)
    text = render(conventions_table(rows), "md")
    assert all(name in text for group, names in protocol.conventions.items() if group not in EXTRACTION_GROUPS
               for name in names if group != "score" or score_applies(name))
    return {(r["group"], r["convention"], r["metric"]): r["value"] for r in rows}


# ------------------------------------------------------------------------------------------ independent readings


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _tar(scores, labels, far, convention):
    """TAR@FAR from scikit-learn's ROC (NaN where floor(far * impostors) = 0, except nearest-reference)."""
    n_imp = int((~labels).sum())
    if math.floor(far * n_imp) == 0 and convention != "nearest-reference":
        return math.nan
    if convention in ("nearest", "nearest-reference"):
        fpr, tpr, _ = roc_curve(labels, scores)  # drop_intermediate=True, as the reference scripts call it
        fpr, tpr = fpr[::-1], tpr[::-1]  # insightface eval_ijbc.py flips: the largest TPR among equal FPRs
        return tpr[np.argmin(np.abs(fpr - far))]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    if convention == "strict":
        return tpr[fpr <= far].max()
    return np.interp(far, fpr, tpr)


def _best_threshold(scores, labels):
    """Best accuracy over every cut of the sorted scores (accept iff score >= t), brute force."""
    cuts = np.append(np.unique(scores), np.inf)
    return max(np.mean((scores >= t) == labels) for t in cuts)


def _insightface_grid(emb_a, emb_b, labels, n_folds=10):
    """insightface verification.py: squared L2 distance of unit embeddings, thresholds 0.00..3.99, the first best
    on the other folds, "same" iff distance < threshold; mean over contiguous folds."""
    dist = ((_unit(emb_a) - _unit(emb_b)) ** 2).sum(axis=1)
    thresholds = np.arange(0, 4, 0.01)
    folds = np.array_split(np.arange(len(labels)), n_folds)
    accs = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        train_acc = [np.mean((dist[train] < t) == labels[train]) for t in thresholds]
        t = thresholds[int(np.argmax(train_acc))]
        accs.append(np.mean((dist[test] < t) == labels[test]))
    return float(np.mean(accs))


def _check_tar_rows(values, fars, scores, labels, prefix=""):
    for (group, conv, metric), value in values.items():
        if group != "tar":
            continue
        far = float(metric.rsplit("=", 1)[1])
        if not metric.startswith(prefix + "tar@") or far not in fars:
            continue
        assert value == pytest.approx(_tar(scores, labels, far, conv), nan_ok=True, abs=1e-12), (conv, metric)


# ------------------------------------------------------------------------------------------------------ families


def test_pair_family(tmp_path):
    write_lfw(tmp_path, names=("Alice_A", "Bob_B", "Carol_C", "Dan_D"), n_images=4, per_fold=12)
    p = load_protocol("lfw", tmp_path, aligned=True, expected_pairs=None)
    ids = [k.split("/")[1] for k in p.images.keys()]
    emb = noisy_identity_embeddings(ids, noise=1.5)
    values = _rows(p, emb)
    a, b, labels = emb[p.pairs[:, 0]], emb[p.pairs[:, 1]], p.labels
    scores = (_unit(a) * _unit(b)).sum(axis=1)
    _check_tar_rows(values, p.fars, scores, labels)
    assert values[("accuracy", "best-threshold", "accuracy")] == pytest.approx(_best_threshold(scores, labels))
    assert values[("accuracy", "kfold-grid", "accuracy")] == pytest.approx(_insightface_grid(a, b, labels))
    assert values[("accuracy", "kfold-angular", "accuracy")] == pytest.approx(
        angular_kfold_accuracy(a, b, labels, n_folds=10).mean)
    for conv in ("kfold-exact", "kfold-youden"):
        assert values[("accuracy", conv, "accuracy")] == pytest.approx(
            pair_accuracy(scores, labels, convention=conv, n_folds=10).mean)


def _ijb_template_features(fx, emb, pooling):
    """Template features by hand: detector-weighted raw image features (the loader's defaults), pooled."""
    tids, medias = np.asarray(fx.templates), np.asarray(fx.medias)
    feats = emb * np.asarray(fx.scores, dtype=np.float64)[:, None]
    out = {}
    for t in np.unique(tids):
        mine = tids == t
        if pooling == "media-mean-sum":
            out[t] = sum(feats[mine & (medias == m)].mean(axis=0) for m in np.unique(medias[mine]))
        else:  # image-mean
            out[t] = feats[mine].mean(axis=0)
        out[t] = out[t] / np.linalg.norm(out[t])
    return out


def test_ijb_verification_family(tmp_path):
    fx, _subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    values = _rows(p, emb)
    labels = np.asarray(fx.pairs)[:, 2].astype(bool)
    feats = _ijb_template_features(fx, emb.astype(np.float64), "media-mean-sum")
    scores = np.array([feats[a] @ feats[b] for a, b, _ in fx.pairs])
    _check_tar_rows(values, p.fars if hasattr(p, "fars") else (1e-1,), scores, labels)
    assert values[("tar", "nearest", "tar@far=1e-1")] == pytest.approx(_tar(scores, labels, 0.1, "nearest"), abs=1e-6)
    image_mean = _ijb_template_features(fx, emb.astype(np.float64), "image-mean")
    s2 = np.array([image_mean[a] @ image_mean[b] for a, b, _ in fx.pairs])
    assert values[("pooling", "image-mean", "tar@far=1e-1")] == pytest.approx(_tar(s2, labels, 0.1, "nearest"),
                                                                             abs=1e-6)


def test_ijb_identification_family(tmp_path):
    fx, subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    values = _rows(p, emb)
    feats = _ijb_template_features(fx, emb.astype(np.float64), "media-mean-sum")
    gallery = {"G1": [t for t in feats if (t - 1) % 100 == 0 and subj[t] < 5],
               "G2": [t for t in feats if (t - 1) % 100 == 0 and subj[t] >= 5]}
    probes = [t for t in feats if (t - 1) % 100 != 0]

    def top_subject(t, templates):
        return subj[templates[int(np.argmax([feats[t] @ feats[g] for g in templates]))]]

    for g, templates in gallery.items():  # NIST: rank-1 over the searches whose subject is in that gallery
        mated = [t for t in probes if subj[t] in {subj[x] for x in templates}]
        expected = np.mean([top_subject(t, templates) == subj[t] for t in mated])
        assert values[("1n", "nist", f"{g}/rank1")] == pytest.approx(expected)
    merged = gallery["G1"] + gallery["G2"]
    assert values[("1n", "merged-galleries", "rank1")] == pytest.approx(
        np.mean([top_subject(t, merged) == subj[t] for t in probes]))


def test_megaface_family(tmp_path):
    ids = ["Ann"] * 4 + ["Bob"] * 3 + ["Cy"] * 5
    write_megaface_root(tmp_path, ids, 30, sizes=(100,), write_images=False)
    p = load_protocol("megaface", tmp_path, distractors=100, check_counts=False, cleaned=False)
    rng = np.random.default_rng(0)
    emb = np.concatenate([noisy_identity_embeddings(ids, noise=0.9), rng.normal(size=(30, 8))])
    values = _rows(p, emb)
    # devkit rank-1 by hand: each (query, mate) of one identity; success iff the mate outranks every distractor
    u = _unit(emb)
    probe, dis = u[:len(ids)], u[len(ids):]
    wins = [probe[i] @ probe[j] > (dis @ probe[i]).max() for i in range(len(ids)) for j in range(len(ids))
            if i != j and ids[i] == ids[j]]
    assert values[("megaface_cleaning", "none", "rank1")] == pytest.approx(np.mean(wins))


def test_kface_family(tmp_path):
    people = [f"1908{k:04d}" for k in range(4)]
    pairs = []
    for k in range(20):
        i, j = people[k % 4], people[(k + 1) % 4]
        pairs.append((kface_path(i, 1, 1, 1, k % 20 + 1), kface_path(i, 2, 2, 2, (k + 3) % 20 + 1), 1))
        pairs.append((kface_path(i, 1, 1, 1, k % 20 + 1), kface_path(j, 3, 2, 3, (k + 5) % 20 + 1), 0))
    write_kface_root(tmp_path, {"Q1": pairs}, write_images=False)
    p = load_protocol("kface", tmp_path, lists=("Q1",), check_counts=False)
    keys = p.images.keys()
    emb = noisy_identity_embeddings([k.split("/")[0] for k in keys], noise=1.2)
    values = _rows(p, emb)
    row = {k: i for i, k in enumerate(keys)}
    a = emb[[row[x] for x, _, _ in pairs]]
    b = emb[[row[y] for _, y, _ in pairs]]
    labels = np.array([lab for _, _, lab in pairs], dtype=bool)
    scores = (_unit(a) * _unit(b)).sum(axis=1)
    _check_tar_rows(values, (1e-1,), scores, labels, prefix="Q1/")
    assert values[("accuracy", "best-threshold", "Q1/accuracy")] == pytest.approx(_best_threshold(scores, labels))
