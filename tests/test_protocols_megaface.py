"""MegaFace challenge 1 loader: lists, cleaning, devkit feature files, rank-1 / TAR against brute force."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from writers_ijb import write_devkit_feature, write_megaface_root

from fr_bench.protocols import ProtocolError, load_protocol, load_spec
from fr_bench.protocols.megaface import load_megaface, read_devkit_feature

IDS = ["Anna_A"] * 4 + ["Bob_B"] * 3 + ["Cleo_C"] * 5 + ["Dan_D"]  # Dan has one image: no query
DIM = 8


@pytest.fixture
def mf(tmp_path):
    root = tmp_path / "megaface"
    probes, dis = write_megaface_root(root, IDS, 40, sizes=(10, 100), write_images=False)
    return root, probes, dis


def _embeddings(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, DIM))
    codes = np.unique(IDS, return_inverse=True)[1]
    probe = centres[codes] + 0.9 * rng.normal(size=(len(IDS), DIM))
    dis = rng.normal(size=(n, DIM))
    return np.concatenate([probe, dis]).astype(np.float32)


def brute_rank1(probe, ids, dis):
    """Devkit procedure by explicit loops: each (query, other image of the identity) pair; success iff the mate
    scores strictly above every distractor."""
    p = probe / np.linalg.norm(probe, axis=1, keepdims=True)
    d = dis / np.linalg.norm(dis, axis=1, keepdims=True)
    n_ok = n_q = 0
    for i, j in itertools.permutations(range(len(p)), 2):
        if ids[i] != ids[j]:
            continue
        n_q += 1
        n_ok += float(p[i] @ p[j]) > max(float(p[i] @ x) for x in d)
    return n_ok / n_q, n_q


def test_layout_order_and_counts(mf):
    root, probes, dis = mf
    p = load_protocol("megaface", root, distractors=100, check_counts=False, cleaned=False)
    assert len(p.images) == len(IDS) + 40  # the 100-list holds the 40 distractors we wrote
    assert p.images.keys()[0] == f"facescrub_images/{probes[0]}"
    assert p.images.keys()[len(IDS)] == f"megaface_images/{dis[0]}"
    assert p.n_probes == len(IDS)
    q = load_protocol("megaface", root, distractors=10, check_counts=False, cleaned=False)
    assert len(q.images) == len(IDS) + 10


def test_official_counts_checked(mf):
    root, _, _ = mf
    with pytest.raises(ProtocolError, match=r"3,530 probe images.*check_counts=False"):
        load_protocol("megaface", root, distractors=10, cleaned=False)


@pytest.mark.parametrize("options,error,match", [
    ({"distractors": 50}, ValueError, "distractors must be one of"),
    ({"distractors": 10, "aligned": False}, ProtocolError, "aligned=True"),
    ({}, ProtocolError, r"megaface_features_list.json_1000000_1: devkit template list not found"),
], ids=["size", "aligned", "list"])
def test_bad_options(mf, options, error, match):
    root, _, _ = mf
    with pytest.raises(error, match=match):
        load_protocol("megaface", root, check_counts=False, **options)


def test_malformed_probe_list(mf):
    root, _, _ = mf
    (root / "templatelists" / "facescrub_features_list.json").write_text('{"path": ["a/b.png"]}')
    with pytest.raises(ProtocolError, match=r"facescrub_features_list.json: expected a JSON object with list\(s\)"):
        load_protocol("megaface", root, distractors=10, check_counts=False)


def test_rank1_against_brute_force(mf):
    root, _, _ = mf
    p = load_protocol("megaface", root, distractors=100, check_counts=False, cleaned=False)
    emb = _embeddings(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb)
    rank1, n_q = brute_rank1(emb[:len(IDS)], IDS, emb[len(IDS):])
    assert 0 < rank1 < 1  # the fixture is neither trivial nor hopeless
    assert r.metrics["rank1"] == pytest.approx(rank1)
    assert r.details["counts"]["queries"] == n_q
    assert r.conventions["megaface_cleaning"] == "none"
    # 13 probes x 40 distractors = 520 impostor pairs cannot resolve FAR = 1e-6
    assert np.isnan(r.metrics["tar@far=1e-6"]) and any("tar@far=1e-6" in f for f in r.flags)


def test_verification_against_brute_force(mf):
    root, _, _ = mf
    spec = load_spec("megaface")
    spec["metrics"]["fars"] = [1e-2]
    p = load_megaface(root, spec, distractors=100, check_counts=False, cleaned=False)
    emb = _embeddings(40, seed=3)
    r = p.evaluate(emb)
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    probe, dis = u[:len(IDS)], u[len(IDS):]
    imp = np.sort((probe @ dis.T).ravel())[::-1]
    k = int(np.floor(1e-2 * imp.size))  # allowed false accepts
    thr = imp[k]
    gen = [float(probe[i] @ probe[j]) for i, j in itertools.combinations(range(len(IDS)), 2) if IDS[i] == IDS[j]]
    assert r.metrics["tar@far=1e-2"] == pytest.approx(np.mean(np.array(gen) > thr))


def test_cleaning_removes_listed_images(tmp_path):
    root = tmp_path / "mf"
    probes, dis = write_megaface_root(root, IDS, 30, sizes=(100,), write_images=False,
                                      facescrub_noises=["Anna_A_1.png", "Unknown_9.png"],
                                      megaface_noises=["1003_0.jpg", "x\t1005_0.jpg"])
    p = load_protocol("megaface", root, distractors=100, check_counts=False)
    assert p.n_probes == len(IDS) - 1 and "Anna_A/Anna_A_1.png" not in p.probe_paths.tolist()
    assert len(p.distractor_paths) == 28
    assert not any(d.endswith(("/1003_0.jpg", "/1005_0.jpg")) for d in p.distractor_paths.tolist())
    assert p.conventions["megaface_cleaning"] == ["remove-listed"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keep = [0, *range(2, len(IDS))] + [len(IDS) + k for k in range(30) if k not in (3, 5)]
        r = p.evaluate(_embeddings(30)[keep])
    assert r.conventions["megaface_cleaning"] == "remove-listed"
    assert r.details["probes_listed_noisy"] == 1 and r.details["distractors_listed_noisy"] == 2


def test_missing_noise_list_is_an_error(mf):
    root, _, _ = mf
    (root / "megaface_noises.txt").unlink()
    with pytest.raises(ProtocolError, match=r"megaface_noises.txt: noise list not found"):
        load_protocol("megaface", root, distractors=10, check_counts=False)


def test_arcface_devkit_variant(tmp_path):
    root = tmp_path / "mf"
    write_megaface_root(root, IDS, 30, sizes=(100,), write_images=False, facescrub_noises=["Anna_A_1.png"],
                        megaface_noises=["1003_0.jpg"])
    p = load_protocol("megaface", root, distractors=100, check_counts=False, cleaning="arcface-devkit-variant")
    assert p.n_probes == len(IDS) and len(p.distractor_paths) == 30  # nothing removed
    emb = _embeddings(30)
    probe, dis = p._arcface_variant(emb[:len(IDS)], emb[len(IDS):])
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    centre = u[[0, 2, 3]].sum(0)  # Anna's unlisted images
    np.testing.assert_allclose(probe[1, :DIM], centre / np.linalg.norm(centre), atol=2e-3)
    assert probe[:, DIM].tolist() == [0.0] * len(IDS)
    assert dis[3, DIM] == 100.0 and dis[np.arange(30) != 3, DIM].max() == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = p.evaluate(emb)
    assert r.conventions["megaface_cleaning"] == "arcface-devkit-variant"


@pytest.mark.parametrize("header", ["4i", "3i"])
def test_devkit_feature_roundtrip(tmp_path, header):
    v = np.random.default_rng(0).normal(size=128).astype(np.float32)
    write_devkit_feature(tmp_path / "f.bin", v, header=header)
    np.testing.assert_array_equal(read_devkit_feature(tmp_path / "f.bin"), v)


@pytest.mark.parametrize("kwargs, message", [
    ({"type_code": 6}, r"type code 5 \(CV_32F\), found 4 and 6"),
    ({"elem_size": 8}, r"element size 4"),
    ({"cols": 2}, r"cols == 1"),
    ({"rows": 10}, r"fits neither"),
    ({"rows": 0}, r"rows > 0"),
])
def test_devkit_feature_rejects_bad_headers(tmp_path, kwargs, message):
    write_devkit_feature(tmp_path / "bad.bin", np.ones(8, np.float32), **kwargs)
    with pytest.raises(ProtocolError, match=rf"bad.bin: .*{message}"):
        read_devkit_feature(tmp_path / "bad.bin")
    (tmp_path / "short.bin").write_bytes(b"\x01\x00")
    with pytest.raises(ProtocolError, match="too short"):
        read_devkit_feature(tmp_path / "short.bin")


def test_features_from_devkit_files(mf, tmp_path):
    root, probes, dis = mf
    emb = _embeddings(40)
    feats = tmp_path / "features"
    for k, path in enumerate(probes):
        write_devkit_feature(feats / "facescrub" / f"{path}_feat.bin", emb[k])
    for k, path in enumerate(dis):
        write_devkit_feature(feats / "megaface" / f"{path}_feat.bin", emb[len(IDS) + k])
    p = load_protocol("megaface", root, distractors=100, check_counts=False, cleaned=False, features=feats)
    np.testing.assert_array_equal(p.devkit_embeddings(), emb)
    (feats / "megaface" / f"{dis[5]}_feat.bin").unlink()
    with pytest.raises(ProtocolError, match="devkit feature file not found"):
        p.devkit_embeddings()


def test_images_load_as_aligned_crops(tmp_path):
    root = tmp_path / "mf"
    write_megaface_root(root, IDS[:3], 4, sizes=(10,), write_images=True)
    p = load_protocol("megaface", root, distractors=10, check_counts=False, cleaned=False)
    assert p.load_image(0).shape == (112, 112, 3) and p.load_image(len(p.images) - 1).shape == (112, 112, 3)
