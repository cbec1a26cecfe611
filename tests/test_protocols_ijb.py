"""IJB-B/C 1:1 and 1:N loaders: parsing, errors, template pooling vs the reference loop, metrics vs independent
computations (scikit-learn ROC, brute-force searches)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_curve
from writers_ijb import write_1n_csv, write_ijb_release, write_pairs

from fr_bench.protocols import ProtocolError, load_protocol
from fr_bench.protocols.columns import read_columns
from fr_bench.protocols.ijb_templates import TemplateLayout, pair_scores, pool_templates, pooling_weights

N_SUBJECTS, T_PER_SUBJECT, DIM = 10, 3, 16


def _layout(seed: int = 0):
    """10 subjects x 3 templates; template 100*s + k; 1-4 images per template over 1-3 media (media ids global)."""
    rng = np.random.default_rng(seed)
    templates, medias, subject_of_template = [], [], {}
    media = 1
    for s in range(N_SUBJECTS):
        for k in range(T_PER_SUBJECT):
            t = 100 * s + k + 1
            subject_of_template[t] = s
            n_media = int(rng.integers(1, 4))
            for _ in range(n_media):
                for _ in range(int(rng.integers(1, 4))):
                    templates.append(t)
                    medias.append(media)
                media += 1
    order = rng.permutation(len(templates))  # the release does not sort images by template
    return np.array(templates)[order], np.array(medias)[order], subject_of_template


def _all_pairs(subject_of_template):
    ts = sorted(subject_of_template)
    return [(a, b, int(subject_of_template[a] == subject_of_template[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]


@pytest.fixture
def ijbc(tmp_path):
    templates, medias, subj = _layout()
    fx = write_ijb_release(tmp_path / "IJBC", "ijbc", templates, medias, _all_pairs(subj))
    return fx, subj


def _embeddings(fx, subj, seed=1, noise=0.8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(N_SUBJECTS, DIM))
    s = np.array([subj[t] for t in fx.templates])
    emb = centers[s] + noise * rng.normal(size=(len(s), DIM))
    return (emb * rng.uniform(0.5, 3.0, size=(len(s), 1))).astype(np.float32)  # varied norms


# ----------------------------------------------------------------------------------------- reference (eval_ijbc.py)


def reference_template_features(img_feats, templates, medias):
    """insightface eval_ijbc.py image2template_feature, written as the straightforward per-template loop."""
    unique_templates = np.unique(templates)
    out = np.zeros((len(unique_templates), img_feats.shape[1]))
    for i, t in enumerate(unique_templates):
        (ind_t,) = np.where(templates == t)
        face_feats, face_medias = img_feats[ind_t], medias[ind_t]
        media_feats = []
        for u, ct in zip(*np.unique(face_medias, return_counts=True)):
            (ind_m,) = np.where(face_medias == u)
            media_feats.append(face_feats[ind_m][0] if ct == 1 else np.mean(face_feats[ind_m], axis=0))
        out[i] = np.sum(media_feats, axis=0)
    return out / np.linalg.norm(out, axis=1, keepdims=True), unique_templates


def reference_scores(emb, fx, *, use_norm=True, use_det=True):
    feats = emb.astype(np.float64)
    if not use_norm:
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    if use_det:
        feats = feats * fx.scores[:, None]
    tf, ut = reference_template_features(feats, fx.templates, fx.medias)
    row = {t: i for i, t in enumerate(ut)}
    a = np.array([row[t] for t in fx.pairs[:, 0]])
    b = np.array([row[t] for t in fx.pairs[:, 1]])
    return np.sum(tf[a] * tf[b], axis=1)


def nearest_tar(scores, labels, far):
    """The published IJB reading: sklearn roc_curve defaults, reversed, TPR at the FPR nearest the target."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    return tpr[np.argmin(np.abs(fpr - far))]


# -------------------------------------------------------------------------------------------------------- parsing


def test_loads_images_templates_pairs(ijbc):
    fx, subj = ijbc
    p = load_protocol("ijbc", fx.root, check_counts=False)
    assert len(p.images) == len(fx.names)
    assert p.images.keys()[:2] == [f"loose_crop/{fx.names[0]}", f"loose_crop/{fx.names[1]}"]
    ref = p.images[3]
    assert ref.key == f"loose_crop/{fx.names[3]}"
    np.testing.assert_allclose(np.array(ref.landmarks), fx.landmarks[3], atol=1e-4)
    assert p.layout.n_templates == len(subj)
    # template membership: every image's template row points back to its template id
    np.testing.assert_array_equal(p.layout.template_ids[p.layout.image_template], fx.templates)
    np.testing.assert_array_equal(p.labels, fx.pairs[:, 2])
    assert p.flip_test
    pickle.loads(pickle.dumps(p.images))  # DataLoader workers need a picklable source


def test_image_load_aligns_to_112(tmp_path):
    fx = write_ijb_release(tmp_path / "IJBC", "ijbc", [1, 1, 2], [1, 1, 2], [(1, 2, 0)], write_images=True)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    img = p.load_image(2)
    assert img.shape == (112, 112, 3) and img.dtype == np.uint8
    assert img[56, 56].any()  # the face region is inside the source image, not border


def test_default_counts_are_the_official_ones(ijbc):
    fx, _ = ijbc
    with pytest.raises(ProtocolError, match=r"469,375 images.*check_counts=False"):
        load_protocol("ijbc", fx.root)


def test_ijbb_reads_its_own_prefix(tmp_path):
    fx = write_ijb_release(tmp_path / "IJBB", "ijbb", [1, 1, 2], [1, 1, 2], [(1, 2, 0)])
    assert len(load_protocol("ijbb", fx.root, check_counts=False).images) == 3
    with pytest.raises(ProtocolError, match="227,630"):
        load_protocol("ijbb", fx.root)
    with pytest.raises(ProtocolError, match="ijbc_face_tid_mid.txt.*not found"):
        load_protocol("ijbc", fx.root, check_counts=False)


def test_name_mismatch_names_file_and_line(ijbc):
    fx, _ = ijbc
    path = fx.root / "meta" / "ijbc_name_5pts_score.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = "999.jpg" + lines[4][lines[4].index(" "):]
    path.write_text("".join(lines))
    with pytest.raises(ProtocolError, match=r"ijbc_name_5pts_score.txt:5: image '999.jpg' differs from '5.jpg'"):
        load_protocol("ijbc", fx.root, check_counts=False)


@pytest.mark.parametrize("bad_line, message", [
    ("7 8 1 4\n", r"pair_label.txt:6: expected 3 fields"),
    ("7 8\n", r"pair_label.txt:6: expected 3 fields"),
    ("7 x 1\n", r"pair_label.txt:6: field 2 should be an integer"),
    ("\n", r"pair_label.txt:6: expected 3 fields"),
    ("101 102 2\n", r"pair_label.txt:6: label must be 0 or 1, found 2"),
    ("101 55555 0\n", r"pair_label.txt:6: template 55555 has no image"),
])
def test_malformed_pair_file_reports_first_bad_line(ijbc, bad_line, message):
    fx, _ = ijbc
    path = fx.root / "meta" / "ijbc_template_pair_label.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = bad_line
    path.write_text("".join(lines))
    with pytest.raises(ProtocolError, match=message):
        load_protocol("ijbc", fx.root, check_counts=False)


def test_malformed_landmark_value(ijbc):
    fx, _ = ijbc
    path = fx.root / "meta" / "ijbc_name_5pts_score.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(" ", " abc ", 1).rsplit(" ", 2)[0] + "\n"
    path.write_text("".join(lines))
    with pytest.raises(ProtocolError, match=r"ijbc_name_5pts_score.txt:3: "):
        load_protocol("ijbc", fx.root, check_counts=False)


def test_read_columns_types(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a.jpg 1 2\nb.jpg 3 4\n")
    names, x, y = read_columns(path, (str, int, int))
    assert names.tolist() == ["a.jpg", "b.jpg"] and x.tolist() == [1, 3] and y.dtype == np.int64


# -------------------------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("keep_norm, detector_weight", [(True, True), (False, True), (True, False), (False, False)])
def test_pooling_matches_reference_loop(ijbc, keep_norm, detector_weight):
    fx, subj = ijbc
    emb = _embeddings(fx, subj)
    p = load_protocol("ijbc", fx.root, check_counts=False, keep_norm=keep_norm, detector_weight=detector_weight)
    ours = p.template_features(emb)
    feats = emb.astype(np.float64)
    if not keep_norm:
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    if detector_weight:
        feats = feats * fx.scores[:, None]
    ref, ut = reference_template_features(feats, fx.templates, fx.medias)
    np.testing.assert_array_equal(ut, p.layout.template_ids)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_pooling_variants_against_direct_definitions():
    templates = np.array([5, 5, 5, 9, 9])
    medias = np.array([1, 1, 2, 3, 4])
    feats = np.array([[1, 0], [3, 0], [0, 1], [2, 2], [0, 4]], dtype=np.float32)
    layout = TemplateLayout.build(templates, medias)
    norms = np.linalg.norm(feats, axis=1)

    def pooled(name, keep=True):
        w = pooling_weights(layout, name, norms=norms, keep_norm=keep, det_scores=None)
        return pool_templates(feats, layout, w)

    def unit(v):
        v = np.asarray(v, dtype=float)
        return v / np.linalg.norm(v)

    # template 5: media 1 mean (2, 0), media 2 (0, 1) -> sum (2, 1); template 9: (2, 2) + (0, 4)
    np.testing.assert_allclose(pooled("media-mean-sum"), [unit([2, 1]), unit([2, 6])], atol=1e-6)
    np.testing.assert_allclose(pooled("media-balanced"), pooled("media-mean-sum"), atol=1e-6)
    np.testing.assert_allclose(pooled("image-mean"), [unit([4, 1]), unit([2, 6])], atol=1e-6)
    np.testing.assert_allclose(pooled("norm-weighted"), [unit([4, 1]), unit([2, 6])], atol=1e-6)
    # image features L2-normalised first: template 5 media 1 mean (1, 0) + (0, 1)
    np.testing.assert_allclose(pooled("media-mean-sum", keep=False)[0], unit([1, 1]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown pooling"):
        pooling_weights(layout, "max", norms=norms, keep_norm=True, det_scores=None)


def test_zero_weight_template_is_an_error():
    layout = TemplateLayout.build(np.array([1, 2]), np.array([1, 2]))
    w = pooling_weights(layout, "media-mean-sum", norms=None, keep_norm=True, det_scores=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="template 1 pools to a zero"):
        pool_templates(np.ones((2, 3), np.float32), layout, w)


@pytest.mark.parametrize("dense", [0.0, 1.0])
def test_pair_scores_both_paths_equal_rowwise_dot(dense):
    rng = np.random.default_rng(3)
    f = rng.normal(size=(50, 8)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    a, b = rng.integers(0, 20, 3000), rng.integers(10, 50, 3000)
    s = pair_scores(f, a, b, dense_threshold=dense, block_bytes=4 * 40 * 7)  # several blocks / chunks
    np.testing.assert_allclose(pair_scores(f, a, b, dense_threshold=dense), s, atol=1e-6)  # one product
    np.testing.assert_allclose(s, np.sum(f[a].astype(float) * f[b], axis=1), atol=1e-6)


# -------------------------------------------------------------------------------------------------------- evaluate


def test_evaluate_matches_reference_procedure(ijbc):
    fx, subj = ijbc
    emb = _embeddings(fx, subj)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb)
    ref = reference_scores(emb, fx)
    np.testing.assert_allclose(r.scores.pairs.scores, ref, atol=1e-6)
    labels = fx.pairs[:, 2]
    n_imp = int((labels == 0).sum())
    assert r.conventions["tar"] == "nearest" and r.conventions["pooling"] == "media-mean-sum"
    for far, name in [(1e-1, "tar@far=1e-1"), (1e-2, "tar@far=1e-2")]:
        assert r.metrics[name] == pytest.approx(nearest_tar(ref, labels, far))
        assert r.operating_points[name]["target_far"] == far
    # 405 impostor pairs: FAR 1e-3 and below cannot be resolved -> NaN + flagged
    assert n_imp < 1000 and np.isnan(r.metrics["tar@far=1e-3"])
    assert any("tar@far=1e-3" in f for f in r.flags)
    np.testing.assert_array_equal(r.scores.pairs.extra["template_a"], fx.pairs[:, 0])
    assert r.details["counts"]["pairs"] == len(fx.pairs)
    assert "roc" in r.details and "eer" in r.metrics
    r.to_dict()


def test_planted_separable_embeddings_give_tar_one(ijbc):
    fx, subj = ijbc
    centers = np.eye(DIM)[:N_SUBJECTS] * 5
    emb = centers[[subj[t] for t in fx.templates]].astype(np.float32)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb, conventions={"tar": "strict"})
    assert r.metrics["tar@far=1e-1"] == 1.0 and r.metrics["tar@far=1e-2"] == 1.0
    assert r.metrics["eer"] == 0.0
    assert r.conventions["tar"] == "strict"


def test_evaluate_conventions_and_errors(ijbc):
    fx, subj = ijbc
    emb = _embeddings(fx, subj)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    with pytest.raises(ValueError, match="unknown 'tar' convention"):
        p.evaluate(emb, conventions={"tar": "best"})
    with pytest.raises(ValueError, match="unknown convention group"):
        p.evaluate(emb, conventions={"accuracy": "x"})
    with pytest.raises(ValueError, match="level must lie in"):
        p.evaluate(emb, ci=1.5, n_boot=5)
    with pytest.raises(ValueError, match="one row per image"):
        p.evaluate(emb[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb, conventions={"pooling": "image-mean"})
    assert r.conventions["pooling"] == "image-mean"


def test_subjects_attached_when_1n_csvs_present(ijbc):
    fx, subj = ijbc
    _write_1n(fx, subj)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(_embeddings(fx, subj))
    expected_a = [subj[t] for t in fx.pairs[:, 0]]
    np.testing.assert_array_equal(r.scores.pairs.extra["subject_a"], expected_a)
    assert ((r.scores.pairs.extra["subject_a"] == r.scores.pairs.extra["subject_b"]) == (fx.pairs[:, 2] == 1)).all()


# ------------------------------------------------------------------------------------------------------------ 1:N


def _write_1n(fx, subj, prefix="ijbc", g=("G1", "G2")):
    """G1: first template of subjects 0-4; G2: of subjects 5-9; probes: the other templates of all subjects."""
    meta = fx.root / "meta"
    rows = {name: [] for name in (*g, "probe")}
    for i, (t, m) in enumerate(zip(fx.templates, fx.medias)):
        s = subj[t]
        k = (t - 1) % 100
        dest = (g[0] if s < 5 else g[1]) if k == 0 else "probe"
        rows[dest].append((t, s, f"img/{i}.jpg"))
    write_1n_csv(meta / f"{prefix}_1N_gallery_{g[0]}.csv", rows[g[0]])
    write_1n_csv(meta / f"{prefix}_1N_gallery_{g[1]}.csv", rows[g[1]])
    write_1n_csv(meta / f"{prefix}_1N_probe_mixed.csv", rows["probe"])
    return rows


def brute_force_gallery(probe, probe_ids, gallery, gallery_ids, fpir):
    """Rank-1 over mated probes and NIST TPIR at FPIR (alarm if score > t), by explicit loops."""
    sims = probe @ gallery.T
    mated = [i for i in range(len(probe)) if probe_ids[i] in set(gallery_ids)]
    nonmated = [i for i in range(len(probe)) if i not in mated]
    hits = []
    for i in mated:
        best = int(np.argmax(sims[i]))
        hits.append(gallery_ids[best] == probe_ids[i])
    tops = sorted((sims[i].max() for i in nonmated), reverse=True)
    k = int(np.floor(fpir * len(nonmated) + 1e-9))
    thr = tops[k] if k < len(tops) else -np.inf
    tpir = sum(1 for i, h in zip(mated, hits) if h and sims[i].max() > thr) / len(mated)
    return np.mean(hits), tpir


def test_1n_nist_against_brute_force(ijbc):
    fx, subj = ijbc
    _write_1n(fx, subj)
    emb = _embeddings(fx, subj, noise=1.5)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    assert sorted(p.galleries) == ["G1", "G2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb)
    assert r.conventions["1n"] == "nist"
    tf = p.template_features(emb)
    probe = tf[p.probe_rows]
    rank1s, tpirs = [], []
    for g in ("G1", "G2"):
        rows, sids = p.galleries[g]
        rank1, tpir = brute_force_gallery(probe, p.probe_subjects, tf[rows], sids, 1e-1)
        assert r.metrics[f"{g}/rank1"] == pytest.approx(rank1)
        assert r.metrics[f"{g}/tpir@fpir=1e-1"] == pytest.approx(tpir)
        rank1s.append(rank1)
        tpirs.append(tpir)
    assert r.metrics["rank1"] == pytest.approx(np.mean(rank1s))
    assert r.metrics["tpir@fpir=1e-1"] == pytest.approx(np.mean(tpirs))
    assert np.isnan(r.metrics["G1/tpir@fpir=1e-3"])  # 10 non-mated searches cannot resolve 1e-3
    assert set(r.scores.extra["probe_subject"]) == set(range(N_SUBJECTS))


def test_1n_merged_is_named_separately(ijbc):
    fx, subj = ijbc
    _write_1n(fx, subj)
    emb = _embeddings(fx, subj, noise=1.5)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb, conventions={"1n": "merged-galleries"})
    assert r.conventions["1n"] == "merged-galleries"
    assert "merged_rate@far=1e-1" in r.metrics and "tpir@fpir=1e-1" not in r.metrics
    tf = p.template_features(emb)
    gal = np.concatenate([p.galleries["G1"][0], p.galleries["G2"][0]])
    gids = np.concatenate([p.galleries["G1"][1], p.galleries["G2"][1]])
    sims = tf[p.probe_rows] @ tf[gal].T
    assert r.metrics["rank1"] == pytest.approx(np.mean(gids[sims.argmax(1)] == p.probe_subjects))


def test_1n_ijbb_gallery_names(tmp_path):
    templates, medias, subj = _layout()
    fx = write_ijb_release(tmp_path / "IJBB", "ijbb", templates, medias, _all_pairs(subj))
    _write_1n(fx, subj, prefix="ijbb", g=("S1", "S2"))
    p = load_protocol("ijbb_1n", fx.root, check_counts=False)
    assert sorted(p.galleries) == ["S1", "S2"]


def _other_subject(g1, rows):
    bad = list(rows)
    bad[1] = (bad[0][0], 77, "img/x.jpg")  # same template, other subject
    write_1n_csv(g1, bad)
    return r"G1.csv:3: template .* SUBJECT_ID 77"


def _unknown_template(g1, rows):
    write_1n_csv(g1, list(rows) + [(4242, 1, "img/y.jpg")])
    return rf"G1.csv:{len(rows) + 2}: template 4242 .* no image"


def _not_an_integer(g1, rows):
    write_1n_csv(g1, [("x12", 1, "img/z.jpg"), *rows[1:]])
    return r"G1.csv:2: TEMPLATE_ID should be an integer"


def _missing_column(g1, rows):
    write_1n_csv(g1, rows, header=("TEMPLATE_ID", "SUBJ", "FILENAME"))
    return r"G1.csv:1: missing column\(s\) SUBJECT_ID.*'SUBJ'"


@pytest.mark.parametrize("damage", [_missing_column, _other_subject, _unknown_template, _not_an_integer])
def test_1n_csv_errors(ijbc, damage):
    fx, subj = ijbc
    rows = _write_1n(fx, subj)
    g1 = fx.root / "meta" / "ijbc_1N_gallery_G1.csv"
    match = damage(g1, rows["G1"])
    try:
        with pytest.raises(ProtocolError, match=match):
            load_protocol("ijbc_1n", fx.root, check_counts=False)
    finally:
        _write_1n(fx, subj)


def test_missing_1n_files(ijbc):
    fx, _ = ijbc
    with pytest.raises(ProtocolError, match=r"ijbc_1N_gallery_G1.csv: file not found"):
        load_protocol("ijbc_1n", fx.root, check_counts=False)


def test_root_required():
    with pytest.raises(ProtocolError, match="root"):
        load_protocol("ijbc", None)
    with pytest.raises(ProtocolError, match="not found"):
        load_protocol("ijbc", Path("/nonexistent/IJBC"))


def test_write_pairs_roundtrip(tmp_path):
    write_pairs(tmp_path / "p.txt", [(1, 2, 1), (3, 4, 0)])
    from fr_bench.protocols.ijb_meta import read_template_pairs

    a, b, y = read_template_pairs(tmp_path / "p.txt")
    assert a.tolist() == [1, 3] and b.tolist() == [2, 4] and y.tolist() == [1, 0]
