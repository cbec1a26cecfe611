"""K-FACE loader (documented proposal): pair-list parsing, errors, per-list metrics against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_curve
from writers_ijb import kface_path, write_kface_root

from fr_bench.protocols import ProtocolError, load_protocol

IDS = [f"1908{k:04d}" for k in range(6)]


def _pairs(seed, n_gen=30, n_imp=30):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_gen):
        i = IDS[rng.integers(len(IDS))]
        out.append((kface_path(i, 1, int(rng.integers(1, 4)), 1, int(rng.integers(1, 21))),
                    kface_path(i, 2, int(rng.integers(1, 4)), 2, int(rng.integers(1, 21))), 1))
    for _ in range(n_imp):
        i, j = rng.choice(len(IDS), 2, replace=False)
        out.append((kface_path(IDS[i], 1, 1, 1, int(rng.integers(1, 21))),
                    kface_path(IDS[j], 3, 2, 3, int(rng.integers(1, 21))), 0))
    return out


@pytest.fixture
def kf(tmp_path):
    root = tmp_path / "kface"
    lists = {"Q1": _pairs(0), "Q2": _pairs(1, 20, 40)}
    write_kface_root(root, lists, write_images=False)
    return root, lists


def _embeddings(p, seed=0):
    rng = np.random.default_rng(seed)
    centres = {i: rng.normal(size=8) for i in IDS}
    return np.stack([centres[k.split("/")[0]] + 1.2 * rng.normal(size=8) for k in p.images.keys()]).astype(np.float32)


def test_parses_lists_and_shares_images(kf):
    root, lists = kf
    p = load_protocol("kface", root, lists=("Q1", "Q2"), check_counts=False)
    paths = {x for q in lists.values() for a, b, _ in q for x in (a, b)}
    assert sorted(p.images.keys()) == sorted(paths)  # each image once, shared by both lists
    assert p.images.keys()[0] == lists["Q1"][0][0]
    a, b, y = p.pairs["Q2"]
    assert len(y) == 60 and y.sum() == 20


def test_official_count_and_missing_list(kf):
    root, _ = kf
    with pytest.raises(ProtocolError, match=r"kface.Q1.txt: expected 1,000 pairs"):
        load_protocol("kface", root, lists=("Q1",))
    with pytest.raises(ProtocolError, match=r"kface.Q3.txt: file not found"):
        load_protocol("kface", root, check_counts=False)
    with pytest.raises(ValueError, match="non-empty subset"):
        load_protocol("kface", root, lists=("Q9",), check_counts=False)


@pytest.mark.parametrize("line, message", [
    ("19080000/S001/L1/E01/C1.jpg 19080001/S001/L1/E01/C2.jpg 3\n", r"kface.Q1.txt:4: label must be 1"),
    ("19080000/S001/L1/E01/C1.jpg 19080001/S001/L1/E01/C2.jpg\n", r"kface.Q1.txt:4: expected 3 fields"),
    ("19080000/S001/L1/C1.jpg 19080001/S001/L1/E01/C2.jpg 1\n", r"kface.Q1.txt:4: field 1 .* is not a K-FACE path"),
])
def test_bad_lines(kf, line, message):
    root, _ = kf
    path = root / "kface.Q1.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = line
    path.write_text("".join(lines))
    with pytest.raises(ProtocolError, match=message):
        load_protocol("kface", root, lists=("Q1",), check_counts=False)


def test_metrics_per_list_against_sklearn(kf):
    root, lists = kf
    p = load_protocol("kface", root, lists=("Q1", "Q2"), check_counts=False)
    emb = _embeddings(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb)
    keys = p.images.keys()
    row = {k: i for i, k in enumerate(keys)}
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for q, pairs in lists.items():
        s = np.array([u[row[a]] @ u[row[b]] for a, b, _ in pairs])
        y = np.array([t for _, _, t in pairs])
        fpr, tpr, _ = roc_curve(y, s)
        fpr, tpr = fpr[::-1], tpr[::-1]
        assert r.metrics[f"{q}/tar@far=1e-1"] == pytest.approx(tpr[np.argmin(np.abs(fpr - 0.1))])
        # best-threshold accuracy: max over every cut of the sorted scores (same iff score > t)
        cuts = np.concatenate([[-np.inf], np.sort(s)])
        best = max(np.mean((s > t) == (y == 1)) for t in cuts)
        assert r.metrics[f"{q}/accuracy"] == pytest.approx(best)
        assert np.isnan(r.metrics[f"{q}/tar@far=1e-3"])  # 30-40 impostors cannot resolve 1e-3
    assert r.conventions["accuracy"] == "best-threshold" and any("optimistic" in f for f in r.flags)
    assert any("proposal" in f for f in r.flags)
    assert len(r.scores.pairs.scores) == 120


def test_conventions_selectable(kf):
    root, _ = kf
    p = load_protocol("kface", root, lists=("Q1",), check_counts=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(_embeddings(p), conventions={"tar": "strict", "accuracy": "kfold-exact"})
    assert r.conventions == {"tar": "strict", "accuracy": "kfold-exact", "flip": "concat", "score": "cosine"}
    assert "image and mirror embeddings concatenated" in r.details["score"]
    assert r.operating_points["Q1/tar@far=1e-1"]["convention"] == "strict"


def test_images_must_be_aligned_crops(tmp_path):
    root = tmp_path / "kface"
    write_kface_root(root, {"Q1": _pairs(0, 2, 2)})
    p = load_protocol("kface", root, lists=("Q1",), check_counts=False)
    assert p.load_image(0).shape == (112, 112, 3)
    from writers_ijb import write_jpeg

    write_jpeg(root / p.images.keys()[1], (100, 120), 0)
    with pytest.raises(ProtocolError, match="expected an aligned 112x112"):
        p.load_image(1)
