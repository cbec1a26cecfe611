"""Pair-verification loaders (LFW, CFP, AgeDB-30, CALFW/CPLFW, folder) and PairProtocol.evaluate.

Fixtures are written in the real formats by tests/writers.py. Expected numbers are worked out by hand from planted
embeddings (integer error counts per fold), never copied from the code's output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from writers import (
    lfw_pair_lines,
    tiny_face,
    write_bin,
    write_cfp,
    write_consecutive_pairs,
    write_image,
    write_landmarks,
    write_lfw,
)

from fr_bench.align import ARCFACE_TEMPLATE, align_face
from fr_bench.protocols import load_protocol, load_spec
from fr_bench.protocols.base import ProtocolError
from fr_bench.protocols.options import FROM_SPEC
from fr_bench.protocols.pair_loading import contiguous_folds
from fr_bench.protocols.pairs import OPTIMISTIC_FLAG, PairProtocol
from fr_bench.protocols.scoring import far_name

# ------------------------------------------------------------------------------------------------ helpers


def planted_pair_embeddings(scores: np.ndarray, pairs: np.ndarray, n_images: int, seed: int = 0) -> np.ndarray:
    """Raw embeddings whose pair cosines are ``scores`` (each image in exactly one pair), rows scaled by random
    powers of two: normalisation is exercised, yet exact in floating point, so equal scores stay exactly tied."""
    emb = np.zeros((n_images, 3))
    theta = np.arccos(np.clip(scores, -1, 1))
    emb[pairs[:, 0]] = [1.0, 0.0, 0.0]
    emb[pairs[:, 1], 0] = np.cos(theta)
    emb[pairs[:, 1], 1] = np.sin(theta)
    emb *= np.random.default_rng(seed).choice([0.5, 2.0, 8.0, 32.0], size=(n_images, 1))
    return emb


def identity_embeddings(identities: list[str]) -> np.ndarray:
    """One-hot embedding per identity (genuine cosine 1, impostor cosine 0), scaled by 7."""
    names = sorted(set(identities))
    return 7.0 * np.eye(len(names))[[names.index(i) for i in identities]]


@pytest.fixture(scope="module")
def lfw_bin(tmp_path_factory):
    """A full-count lfw.bin (6000 pairs, 12000 PNG members; a few distinct images, encoded once)."""
    root = tmp_path_factory.mktemp("lfwbin")
    faces = [tiny_face(i) for i in range(4)]
    labels = np.tile(np.repeat([True, False], 300), 10)
    write_bin(root / "lfw.bin", [faces[i % 4] for i in range(12000)], labels)
    return root, labels


# -------------------------------------------------------------------------------------------- LFW (.bin)


def test_lfw_bin_counts_order_and_folds(lfw_bin):
    root, labels = lfw_bin
    p = load_protocol("lfw", root)
    assert p.source == "bin" and len(p.images) == 12000
    np.testing.assert_array_equal(p.pairs, np.arange(12000).reshape(6000, 2))
    np.testing.assert_array_equal(p.labels, labels)
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 600))
    assert p.images.ref(7).key == "lfw.bin#7" and p.images.load(7).shape == (112, 112, 3)
    # the root may be the pack itself
    assert len(load_protocol("lfw", root / "lfw.bin").pairs) == 6000


def test_planted_errors_give_hand_computed_numbers(lfw_bin):
    root, labels = lfw_bin
    p = load_protocol("lfw", root)
    # Fold f: g_f genuine pairs scored 0.05 (below every impostor) and i_f impostor pairs scored 0.95 (above every
    # genuine); the rest: genuine 0.9, impostor 0.1. Any threshold between 0.1 and 0.9 is optimal on every training
    # split, so held-out fold f makes exactly g_f + i_f errors under each k-fold convention.
    g_err = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    i_err = np.array([0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
    scores = np.where(labels, 0.9, 0.1)
    for f in range(10):
        gen = np.flatnonzero(labels & (p.folds == f))
        imp = np.flatnonzero(~labels & (p.folds == f))
        scores[gen[: g_err[f]]] = 0.05
        scores[imp[: i_err[f]]] = 0.95
    emb = planted_pair_embeddings(scores, p.pairs, 12000)
    fold_acc = (600 - g_err - i_err) / 600
    for conv in ("kfold-grid", "kfold-exact", "kfold-youden"):
        r = p.evaluate(emb, conventions={"accuracy": conv})
        assert r.conventions["accuracy"] == conv
        np.testing.assert_allclose(r.details["accuracy_folds"]["accuracies"], fold_acc, atol=1e-12)
        assert r.metrics["accuracy"] == pytest.approx(fold_acc.mean(), abs=1e-12)
        assert r.metrics["accuracy_std"] == pytest.approx(fold_acc.std(), abs=1e-12)
    assert r.metrics["accuracy_sem"] == pytest.approx(fold_acc.std(ddof=1) / np.sqrt(10), abs=1e-12)
    assert r.details["accuracy_spread"].startswith("sem")
    best = p.evaluate(emb, conventions={"accuracy": "best-threshold"})
    assert best.metrics["accuracy"] == pytest.approx((6000 - g_err.sum() - i_err.sum()) / 6000, abs=1e-12)
    assert OPTIMISTIC_FLAG in best.flags and "accuracy_std" not in best.metrics
    # TAR@FAR=1e-3, strict: 3000 impostors allow floor(3) false accepts; the 2 planted impostors (0.95) fit, so
    # the threshold reaches 0.9 and accepts every genuine pair except the planted ones.
    strict = p.evaluate(emb, conventions={"tar": "strict"})
    assert strict.metrics["tar@far=1e-3"] == (3000 - g_err.sum()) / 3000
    op = strict.operating_points["tar@far=1e-3"]
    assert op["far"] == 2 / 3000 and op["convention"] == "strict" and op["n_impostor"] == 3000
    # AUC by brute force over all genuine x impostor score pairs (ties count one half)
    s = strict.scores.pairs.scores.astype(np.float64)
    gen, imp = s[labels], s[~labels]
    auc = ((gen[:, None] > imp[None, :]).sum() + 0.5 * (gen[:, None] == imp[None, :]).sum()) / (gen.size * imp.size)
    assert strict.metrics["auc"] == pytest.approx(auc, abs=1e-6)
    np.testing.assert_allclose(s, scores, atol=1e-6)
    np.testing.assert_array_equal(strict.scores.pairs.folds, p.folds)
    assert strict.scores.pairs.scores.dtype == np.float32


def test_xnorm_norms_and_details(lfw_bin):
    root, labels = lfw_bin
    p = load_protocol("lfw", root)
    emb = planted_pair_embeddings(np.where(labels, 0.8, 0.2), p.pairs, 12000, seed=3)
    r = p.evaluate(emb)
    assert r.metrics["xnorm"] == pytest.approx(np.linalg.norm(emb, axis=1).mean())
    given = np.full(12000, 2.5)
    assert p.evaluate(emb, norms=given).metrics["xnorm"] == pytest.approx(2.5)
    assert r.metrics["accuracy"] == 1.0 and r.metrics["eer"] == 0.0 and r.metrics["auc"] == 1.0
    assert r.conventions == {"accuracy": "kfold-grid", "tar": "nearest", "score": "cosine", "flip": "sum"}
    assert r.details["score"].startswith("cosine (") and "flip-summed embeddings" in r.details["score"]
    roc = r.details["roc"]
    assert len(roc["far"]) <= 1000 and roc["far"][0] == 0 and roc["far"][-1] == 1 and roc["tar"][-1] == 1
    assert len(roc["threshold"]) == len(roc["far"]) and roc["threshold"][0] == np.inf
    assert r.details["counts"]["n_pairs_total"] == 6000 and r.details["counts"]["genuine"] == 3000
    assert "dprime" in r.details["distribution"]
    json.dumps(r.to_dict())  # JSON-ready


def _zero_row(emb):
    zero = emb.copy()
    zero[5] = 0
    return zero


@pytest.mark.parametrize("make,kw,match", [
    (lambda e: e[:-1], {}, "12000"),
    (lambda e: e, {"conventions": {"accuracy": "magic"}}, "unknown 'accuracy' convention"),
    (lambda e: e, {"conventions": {"pooling": "x"}}, "unknown convention group"),
    (lambda e: e, {"conventions": {"accuracy": "best-threshold"}, "ci": 0.95, "n_boot": 5, "accuracy_unit": "fold"},
     "accuracy_unit"),
    (_zero_row, {}, "zeros"),
], ids=["rows", "accuracy-name", "group", "fold-unit", "zero-row"])
def test_evaluate_rejects_bad_input(lfw_bin, make, kw, match):
    root, labels = lfw_bin
    p = load_protocol("lfw", root)
    emb = planted_pair_embeddings(np.where(labels, 0.8, 0.2), p.pairs, 12000)
    with pytest.raises(ValueError, match=match):
        p.evaluate(make(emb), **kw)


def test_angular_convention_is_offered(lfw_bin):
    root, labels = lfw_bin
    p = load_protocol("lfw", root)
    emb = planted_pair_embeddings(np.where(labels, 0.8, 0.2), p.pairs, 12000)
    assert p.conventions["accuracy"][0] == "kfold-grid" and "kfold-angular" in p.conventions["accuracy"]
    r = p.evaluate(emb, conventions={"accuracy": "kfold-angular"})
    assert r.conventions["accuracy"] == "kfold-angular" and 0.5 <= r.metrics["accuracy"] <= 1.0


def test_bin_count_and_options(tmp_path):
    faces = [tiny_face(i) for i in range(4)]
    write_bin(tmp_path / "lfw.bin", [faces[i % 4] for i in range(40)], [True, False] * 10)
    with pytest.raises(ProtocolError, match=r"lfw\.bin: 20 pairs, expected 6000"):
        load_protocol("lfw", tmp_path)
    p = load_protocol("lfw", tmp_path, expected_pairs=None)
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 2))
    with pytest.raises(ValueError, match="aligned"):
        load_protocol("lfw", tmp_path, aligned="maybe")
    with pytest.raises(ProtocolError, match="needs the benchmark files"):
        load_protocol("lfw", None)


# --------------------------------------------------------------------------------------- LFW (official layout)


@pytest.fixture(scope="module")
def lfw_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfwtree")
    _, pairs = write_lfw(root)
    return root, pairs


def test_lfw_official_layout(lfw_tree):
    root, pairs = lfw_tree
    p = load_protocol("lfw", root, aligned=True)
    assert p.source == "official:pairs.txt" and len(p.pairs) == 6000
    np.testing.assert_array_equal(p.labels, np.tile(np.repeat([True, False], 300), 10))
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 600))
    keys = p.images.keys()
    for k in (0, 299, 300, 5999):
        t = pairs[k]
        a, b = (f"{t[0]}/{t[0]}_{t[1]:04d}.jpg", f"{t[0]}/{t[0]}_{t[2]:04d}.jpg") if len(t) == 3 else (
            f"{t[0]}/{t[0]}_{t[1]:04d}.jpg", f"{t[2]}/{t[2]}_{t[3]:04d}.jpg")
        assert keys[p.pairs[k, 0]] == f"lfw/{a}" and keys[p.pairs[k, 1]] == f"lfw/{b}"
    assert len(keys) == len(set(keys)) <= 12  # each image listed once
    ids = [k.split("/")[1] for k in keys]
    r = p.evaluate(identity_embeddings(ids))
    assert r.metrics["accuracy"] == 1.0 and r.metrics["tar@far=1e-3"] == 1.0


def test_lfw_official_needs_landmarks_or_aligned(lfw_tree, tmp_path):
    root, _ = lfw_tree
    with pytest.raises(ProtocolError, match="landmarks=PATH"):
        load_protocol("lfw", root)
    big = tmp_path / "big"
    write_lfw(big, n_folds=1, per_fold=5, size=250)
    with pytest.raises(ProtocolError, match=r"_000\d\.jpg: expected an aligned 112x112 crop, got 250x250"):
        load_protocol("lfw", big, aligned=True, expected_pairs=None)


def test_lfw_with_landmarks_aligns_on_load(tmp_path):
    _, pairs = write_lfw(tmp_path, n_folds=1, per_fold=4, size=250)
    rng = np.random.default_rng(0)
    rows = {}
    for name in ("Alice_A", "Bob_B", "Carol_C", "Dan_D"):
        for n in (1, 2, 3):
            rows[f"{name}/{name}_{n:04d}.jpg"] = ARCFACE_TEMPLATE * 1.8 + rng.uniform(10, 30, size=2)
    lm = write_landmarks(tmp_path / "lm.txt", rows)
    p = load_protocol("lfw", tmp_path, landmarks=str(lm), expected_pairs=None)
    ref = p.images.ref(0)
    assert ref.landmarks is not None and ref.key.startswith("lfw/")
    rel = ref.key[len("lfw/"):]
    from PIL import Image

    raw = np.asarray(Image.open(tmp_path / "lfw" / rel).convert("RGB"))
    np.testing.assert_allclose(np.array(ref.landmarks), rows[rel], atol=1e-3)  # file keeps 4 decimals
    np.testing.assert_array_equal(p.images.load(0), align_face(raw, np.array(ref.landmarks)))
    assert str(lm) in p.data_files
    # an image without landmarks: error naming the landmark file, or its pairs dropped with allow_missing
    victim = rel
    del rows[victim]
    lm2 = write_landmarks(tmp_path / "lm2.txt", rows)
    with pytest.raises(ProtocolError, match=r"pairs\.txt:\d+: no landmarks for it in .*lm2\.txt"):
        load_protocol("lfw", tmp_path, landmarks=str(lm2), expected_pairs=None)
    q = load_protocol("lfw", tmp_path, landmarks=str(lm2), expected_pairs=None, allow_missing=True)
    n_victim = sum(victim in (f"{t[0]}/{t[0]}_{t[1]:04d}.jpg", f"{t[0]}/{t[0]}_{t[2]:04d}.jpg") if len(t) == 3 else
                   victim in (f"{t[0]}/{t[0]}_{t[1]:04d}.jpg", f"{t[2]}/{t[2]}_{t[3]:04d}.jpg") for t in pairs)
    assert n_victim >= 1 and len(q.pairs) == 8 - n_victim and q.n_pairs_total == 8
    assert f"lfw/{victim}" not in q.images.keys()


LFW_GOOD = [("Alice_A", 1, 2), ("Bob_B", 1, 3), ("Alice_A", 1, "Bob_B", 2), ("Carol_C", 3, "Dan_D", 1)]


def _lfw_with(root, pairs, header="1\t2", **kw):
    write_lfw(root, pairs=pairs, header=header)
    return load_protocol("lfw", root, aligned=True, **{"expected_pairs": None, **kw})


@pytest.mark.parametrize("pairs,header,kw,match", [
    ([LFW_GOOD[0], ("Bob_B", 1, 3, 4), *LFW_GOOD[2:]], "1\t2", {}, r"pairs\.txt:3: expected a matched pair"),
    ([*LFW_GOOD[:3], ("Carol_C", 3)], "1\t2", {}, r"pairs\.txt:5: expected a mismatched pair"),
    ([("Alice_A", "x", 2), *LFW_GOOD[1:]], "1\t2", {}, r"pairs\.txt:2: image number must be a whole number"),
    (LFW_GOOD, "a b c", {}, r"pairs\.txt:1: expected a header"),
    (LFW_GOOD, "1\t3", {}, r"pairs\.txt:.*header announces 1 x \(3 matched"),
    ([*LFW_GOOD[:2], ("Alice_A", 1, "Zed_Z", 2), LFW_GOOD[3]], "1\t2", {}, r"pairs\.txt:4: unknown identity 'Zed_Z'"),
    ([LFW_GOOD[0], ("Bob_B", 1, 9), *LFW_GOOD[2:]], "1\t2", {},
     r"pairs\.txt:3: image file not found: .*Bob_B_0009\.jpg"),
    (LFW_GOOD, "1\t2", {"expected_pairs": FROM_SPEC}, "expected 6000"),
], ids=["matched", "mismatched", "number", "header", "count", "identity", "image", "official-count"])
def test_lfw_pairs_txt_errors(tmp_path, pairs, header, kw, match):
    with pytest.raises(ProtocolError, match=match):
        _lfw_with(tmp_path, pairs, header, **kw)


def test_lfw_pairs_txt_good_and_allow_missing(tmp_path):
    assert len(_lfw_with(tmp_path / "good", LFW_GOOD).pairs) == 4
    p = _lfw_with(tmp_path / "missing", [LFW_GOOD[0], ("Bob_B", 1, 9), *LFW_GOOD[2:]], allow_missing=True)
    assert len(p.pairs) == 3 and p.n_pairs_total == 4
    assert any("allow_missing" in f for f in p.load_flags)


def test_allow_missing_flags_shifted_folds(tmp_path):
    _, pairs = write_lfw(tmp_path, n_folds=10, per_fold=3)
    victim = pairs[0]
    (tmp_path / "lfw" / victim[0] / f"{victim[0]}_{victim[1]:04d}.jpg").unlink()
    p = load_protocol("lfw", tmp_path, aligned=True, expected_pairs=None, allow_missing=True)
    dropped = 60 - len(p.pairs)
    assert dropped >= 1 and p.n_pairs_total == 60
    r = p.evaluate(identity_embeddings([k.split("/")[1] for k in p.images.keys()]))
    assert any(f.startswith(f"allow_missing: {dropped} of 60 pairs dropped") for f in r.flags)
    assert any("differ from the benchmark's folds" in f for f in r.flags)
    assert r.details["counts"]["n_pairs_scored"] == 60 - dropped and r.details["counts"]["n_pairs_total"] == 60


def test_lfw_single_block_dev_file(tmp_path):
    pairs = lfw_pair_lines(["Alice_A", "Bob_B", "Carol_C"], 3, n_folds=1, per_fold=20)
    write_lfw(tmp_path, names=("Alice_A", "Bob_B", "Carol_C"), pairs=pairs, header="20")
    (tmp_path / "pairsDevTest.txt").write_text((tmp_path / "pairs.txt").read_text())
    p = load_protocol("lfw", tmp_path, pairs_file="pairsDevTest.txt", aligned=True)
    assert p.n_folds == 0 and p.conventions["accuracy"] == ["best-threshold"]
    r = p.evaluate(identity_embeddings([k.split("/")[1] for k in p.images.keys()]))
    assert r.conventions["accuracy"] == "best-threshold" and OPTIMISTIC_FLAG in r.flags


def test_lfw_auto_format_choice(lfw_tree, tmp_path):
    root, _ = lfw_tree
    both = tmp_path / "both"
    both.mkdir()
    (both / "pairs.txt").write_text((root / "pairs.txt").read_text())
    (both / "lfw").symlink_to(root / "lfw")
    faces = [tiny_face(i) for i in range(2)]
    write_bin(both / "lfw.bin", [faces[i % 2] for i in range(12000)], np.tile(np.repeat([True, False], 300), 10))
    assert load_protocol("lfw", both).source == "bin"
    assert load_protocol("lfw", both, aligned=True).source == "official:pairs.txt"
    assert load_protocol("lfw", both, format="official", aligned=True).source == "official:pairs.txt"
    with pytest.raises(ValueError, match="format"):
        load_protocol("lfw", both, format="zip")


# -------------------------------------------------------------------------------------------------------- CFP


@pytest.fixture(scope="module")
def cfp_tree(tmp_path_factory):
    return write_cfp(tmp_path_factory.mktemp("cfp"))


@pytest.mark.parametrize("name,split", [("cfp_fp", "FP"), ("cfp_ff", "FF")])
def test_cfp_official_fold_layout(cfp_tree, name, split):
    root, info = cfp_tree
    p = load_protocol(name, root, aligned=True)
    assert len(p.pairs) == 7000
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 700))
    np.testing.assert_array_equal(p.labels, np.tile(np.repeat([True, False], 350), 10))
    keys = p.images.keys()
    second = info["F"] if split == "FF" else info["P"]
    for k in (0, 349, 350, 1400, 6999):
        fold, within = divmod(k, 700)
        same, diff = info[split][fold]
        i, j = same[within] if within < 350 else diff[within - 350]
        assert keys[p.pairs[k, 0]] == info["F"][i] and keys[p.pairs[k, 1]] == second[j]
    ids = [k.split("/")[2] for k in keys]
    assert p.evaluate(identity_embeddings(ids)).metrics["accuracy"] == 1.0


def test_cfp_errors_and_bin(cfp_tree, tmp_path):
    root, _ = cfp_tree
    with pytest.raises(ProtocolError, match="landmarks=PATH"):
        load_protocol("cfp_fp", root)
    import shutil

    bad = tmp_path / "cfp"
    shutil.copytree(root, bad)
    f = bad / "Protocol" / "Split" / "FP" / "03" / "diff.txt"
    lines = f.read_text().splitlines()
    lines[4] = "1,999"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError, match=r"FP/03/diff\.txt:5: index 999 is not in .*Pair_list_P\.txt"):
        load_protocol("cfp_fp", bad, aligned=True)
    lines[4] = "1;2"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError, match=r"diff\.txt:5: expected 'i,j'"):
        load_protocol("cfp_fp", bad, aligned=True)
    faces = [tiny_face(i) for i in range(2)]
    write_bin(tmp_path / "cfp_fp.bin", [faces[i % 2] for i in range(14000)], np.tile(np.repeat([True, False], 350), 10))
    p = load_protocol("cfp_fp", tmp_path / "cfp_fp.bin")
    assert p.source == "bin" and len(p.pairs) == 7000
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 700))
    with pytest.raises(ProtocolError, match="expected 7000"):
        write_bin(tmp_path / "small" / "cfp_ff.bin", faces * 3, [True, False, True])
        load_protocol("cfp_ff", tmp_path / "small")


# ---------------------------------------------------------------------------------------- AgeDB, CALFW, CPLFW


def test_agedb_bin_only(tmp_path):
    faces = [tiny_face(i) for i in range(2)]
    write_bin(tmp_path / "agedb_30.bin", [faces[i % 2] for i in range(40)], [True, False] * 10)
    p = load_protocol("agedb_30", tmp_path, expected_pairs=None)
    assert len(p.pairs) == 20 and p.source == "bin"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProtocolError, match=r"empty: no agedb_30\.bin found"):
        load_protocol("agedb_30", empty)


def _calfw_fixture(root, n_per_class=30):
    names = [f"Person_{k:02d}" for k in range(6)]
    for k, name in enumerate(names):
        for n in (1, 2):
            write_image(root / "aligned images" / f"{name}_{n:04d}.jpg", tiny_face(k * 10 + n))
    rng = np.random.default_rng(0)
    genuine, impostor = [], []
    for g in range(n_per_class):
        name = names[g % 6]
        genuine.append((f"{name}_0001.jpg", f"{name}_0002.jpg", g + 1, g + 1))
    for _ in range(n_per_class):
        i, j = rng.choice(6, size=2, replace=False)
        impostor.append((f"{names[i]}_0001.jpg", f"{names[j]}_0002.jpg", 0, 0))
    return genuine, impostor


@pytest.mark.parametrize("layout", ["class-sorted", "per-fold"])
def test_calfw_list_folds(tmp_path, layout):
    genuine, impostor = _calfw_fixture(tmp_path)
    if layout == "class-sorted":
        pairs = genuine + impostor
    else:
        pairs = [x for f in range(10) for x in genuine[3 * f : 3 * f + 3] + impostor[3 * f : 3 * f + 3]]
    write_consecutive_pairs(tmp_path / "pairs_CALFW.txt", pairs)
    p = load_protocol("calfw", tmp_path, aligned=True, expected_pairs=None)
    # both layouts give fold k = genuine pairs 3k..3k+2 then impostor pairs 3k..3k+2
    np.testing.assert_array_equal(p.folds, np.repeat(np.arange(10), 6))
    np.testing.assert_array_equal(p.labels, np.tile(np.repeat([True, False], 3), 10))
    keys = p.images.keys()
    expected = [x for f in range(10) for x in genuine[3 * f : 3 * f + 3] + impostor[3 * f : 3 * f + 3]]
    for k in (0, 4, 59):
        assert keys[p.pairs[k, 0]] == f"aligned images/{expected[k][0]}"
        assert keys[p.pairs[k, 1]] == f"aligned images/{expected[k][1]}"
    ids = [k.split("/")[1].rsplit("_", 1)[0] for k in keys]
    assert p.evaluate(identity_embeddings(ids)).metrics["accuracy"] == 1.0


def test_calfw_list_errors(tmp_path):
    genuine, impostor = _calfw_fixture(tmp_path, 10)
    path = tmp_path / "pairs_CALFW.txt"
    write_consecutive_pairs(path, genuine + impostor)
    with pytest.raises(ProtocolError, match=r"pairs_CALFW\.txt: 20 pairs, expected 6000"):
        load_protocol("calfw", tmp_path, aligned=True)
    write_consecutive_pairs(path, [*genuine[:-1], (genuine[-1][0], genuine[-1][1], 3, 0), *impostor])
    with pytest.raises(ProtocolError, match=r"pairs_CALFW\.txt:20: lines 19-20 form a pair with labels 3 and 0"):
        load_protocol("calfw", tmp_path, aligned=True, expected_pairs=None)
    path.write_text(path.read_text() + "Extra_0001.jpg 0\n")
    with pytest.raises(ProtocolError, match="must be even"):
        load_protocol("calfw", tmp_path, aligned=True, expected_pairs=None)
    path.write_text("A_0001.jpg one\nB_0001.jpg 1\n")
    with pytest.raises(ProtocolError, match=r"pairs_CALFW\.txt:1: label must be a whole number"):
        load_protocol("calfw", tmp_path, aligned=True, expected_pairs=None)


def test_cplfw_from_bin(tmp_path):
    faces = [tiny_face(i) for i in range(2)]
    write_bin(tmp_path / "cplfw.bin", [faces[i % 2] for i in range(12000)], np.tile(np.repeat([True, False], 300), 10),
              encoding="jpg", item_type="ndarray")
    p = load_protocol("cplfw", tmp_path)
    assert p.source == "bin" and len(p.pairs) == 6000 and p.images.load(11999).shape == (112, 112, 3)


# ----------------------------------------------------------------------------------------------------- folder


def _tree(root, n_ids=3, n_imgs=4, size=112):
    for k in range(n_ids):
        for n in range(n_imgs):
            write_image(root / f"id{k}" / f"img{n}.png", tiny_face(k * 10 + n, size))


def test_folder_generated_pairs(tmp_path):
    _tree(tmp_path)
    (tmp_path / "id0" / "notes.txt").write_text("not an image")
    p = load_protocol("folder", tmp_path)
    keys = p.images.keys()
    assert keys == [f"id{k}/img{n}.png" for k in range(3) for n in range(4)]
    ids = np.array([k.split("/")[0] for k in keys])
    a, b = p.pairs[:, 0], p.pairs[:, 1]
    np.testing.assert_array_equal(p.labels, ids[a] == ids[b])
    canon = {(min(x, y), max(x, y)) for x, y in p.pairs.tolist()}
    assert len(canon) == len(p.pairs)  # no pair twice
    gen = {c for c in canon if ids[c[0]] == ids[c[1]]}
    assert len(gen) == 3 * 6 and int(p.labels.sum()) == 18 and int((~p.labels).sum()) == 18
    np.testing.assert_array_equal(p.folds, contiguous_folds(36, 10))
    # the seeded shuffle: same seed -> same protocol; another seed -> other impostors or order
    q = load_protocol("folder", tmp_path)
    np.testing.assert_array_equal(p.pairs, q.pairs)
    assert not np.array_equal(load_protocol("folder", tmp_path, seed=1).pairs, p.pairs)
    assert sorted(p.order.tolist()) == list(range(36))
    r = p.evaluate(identity_embeddings(list(ids)))
    assert r.metrics["accuracy"] == 1.0
    # more impostors than exist: all 48 used, flagged
    many = load_protocol("folder", tmp_path, n_impostors=1000)
    assert int((~many.labels).sum()) == 16 * 3 and any("only 48 impostor" in f for f in many.load_flags)
    assert int((~load_protocol("folder", tmp_path, impostors_per_genuine=2).labels).sum()) == 36


def test_folder_rejection_sampler_matches_the_contract(monkeypatch):
    from fr_bench.protocols import folder

    codes = np.repeat(np.arange(40), 3)
    monkeypatch.setattr(folder, "_ENUMERATE_LIMIT", 0)
    pairs = folder.sample_impostor_pairs(codes, 500, np.random.default_rng(0))
    assert pairs.shape == (500, 2) and (pairs[:, 0] < pairs[:, 1]).all()
    assert (codes[pairs[:, 0]] != codes[pairs[:, 1]]).all()
    assert len({tuple(x) for x in pairs.tolist()}) == 500
    assert [tuple(x) for x in pairs.tolist()] == sorted(tuple(x) for x in pairs.tolist())


def test_folder_pair_list_and_errors(tmp_path):
    _tree(tmp_path)
    lst = tmp_path / "my_pairs.txt"
    lst.write_text("# comment\nid0/img0.png id0/img1.png 1\nid0/img0.png id1/img0.png 0\nid2/img3.png id2/img1.png 1\n"
                   "id1/img2.png id2/img2.png 0\n")
    p = load_protocol("folder", tmp_path, pairs=str(lst))
    assert p.n_folds == 0 and p.conventions["accuracy"] == ["best-threshold"]
    assert p.labels.tolist() == [True, False, True, False]
    ids = [k.split("/")[0] for k in p.images.keys()]
    r = p.evaluate(identity_embeddings(ids))
    assert r.metrics["accuracy"] == 1.0 and OPTIMISTIC_FLAG in r.flags
    lst.write_text("id0/img0.png id0/img1.png yes\n")
    with pytest.raises(ProtocolError, match=r"my_pairs\.txt:1: label must be 1"):
        load_protocol("folder", tmp_path, pairs=str(lst))
    lst.write_text("id0/img0.png id0/img1.png 1\nid0/img0.png id9/img1.png 0\n")
    with pytest.raises(ProtocolError, match=r"my_pairs\.txt:2: image not found"):
        load_protocol("folder", tmp_path, pairs=str(lst))
    assert len(load_protocol("folder", tmp_path, pairs=str(lst), allow_missing=True).pairs) == 1
    with pytest.raises(ValueError, match="not to pairs=PATH"):
        load_protocol("folder", tmp_path, pairs=str(lst), n_impostors=3)
    big = tmp_path / "big"
    _tree(big, size=100)
    with pytest.raises(ProtocolError, match="expected an aligned 112x112 crop, got 100x100"):
        load_protocol("folder", big)


# ------------------------------------------------------------------------------------------- registry, helpers


def test_specs_declare_what_the_loaders_use():
    for name in ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "folder", "demo"):
        spec = load_spec(name)
        assert spec["family"] == "pair-verification" and spec["display_name"] and spec["citation"]
        assert spec["conventions"]["accuracy"] == "kfold-grid" and spec["conventions"]["tar"] == "nearest"
        assert 1e-3 in spec["metrics"]["fars"] and isinstance(spec["known_hashes"], list)
    assert load_spec("lfw")["counts"]["pairs"] == 6000 and load_spec("cfp_fp")["counts"]["pairs"] == 7000
    assert load_spec("cfp_ff")["files"]["split"] == "FF"


def test_far_name_and_folds():
    assert far_name(1e-3) == "1e-3" and far_name(1e-6) == "1e-6" and far_name(0.01) == "1e-2"
    assert np.bincount(contiguous_folds(1485, 10)).tolist() == [149] * 5 + [148] * 5
    assert np.bincount(contiguous_folds(6000, 10)).tolist() == [600] * 10


def test_pair_protocol_validates_its_arrays():
    from fr_bench.protocols.images import FileImageSource

    src = FileImageSource("/nowhere", ["a/1.png", "a/2.png"])
    with pytest.raises(ValueError, match="contiguous"):
        PairProtocol({"name": "x"}, src, [[0, 1], [0, 1]], [True, False], [1, 0], n_folds=2)
    with pytest.raises(ValueError, match="outside"):
        PairProtocol({"name": "x"}, src, [[0, 2]], [True], [0], n_folds=0)


def test_text_records_skips_blanks_and_comments_and_names_bad_lines(tmp_path):
    from fr_bench.protocols.base import text_records

    path = tmp_path / "list.txt"
    path.write_text("# header\n\na 1\n  b 2  \nc\n")
    records = text_records(path, 2, "'<name> <n>'", what="test list", comments=True)
    assert next(records) == (3, ["a", "1"]) and next(records) == (4, ["b", "2"])
    with pytest.raises(ProtocolError, match=r"list\.txt:5: expected '<name> <n>' \(2 fields\), got 'c'"):
        next(records)
    with pytest.raises(ProtocolError, match=r"nope\.txt: test list not found"):
        list(text_records(tmp_path / "nope.txt", 2, "x", what="test list"))
