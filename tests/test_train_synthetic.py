"""The synthetic face generator: determinism, disjoint splits, long tail, label noise, recorded quality, learnability,
and the test split written as a ``folder`` protocol root."""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from fr_bench.train.data import open_dataset
from fr_bench.train.synthetic import SyntheticFaces, write_test_protocol

OFF = {"blur": (0, 0), "noise": (0, 0), "occlusion": (0, 0), "brightness": (1, 1)}


def only(kind: str, value: float) -> dict:
    """A quality config applying exactly one degradation with a fixed amount."""
    return {**OFF, kind: (value, value)}


def test_image_i_is_a_pure_function_of_seed_split_and_index():
    a = SyntheticFaces(num_classes=5, images_per_class=4, seed=7)
    b = SyntheticFaces(num_classes=5, images_per_class=4, seed=7, cache=False)
    order = [19, 3, 0, 11]
    first = {i: a[i][0].numpy() for i in order}
    for i in reversed(order):  # any access order, cached or not
        np.testing.assert_array_equal(b[i][0].numpy(), first[i])
        np.testing.assert_array_equal(a[i][0].numpy(), first[i])
    bigger = SyntheticFaces(num_classes=9, images_per_class=4, seed=7)  # more classes: same first images
    np.testing.assert_array_equal(bigger[11][0].numpy(), first[11])
    assert not np.array_equal(SyntheticFaces(num_classes=5, images_per_class=4, seed=8)[3][0].numpy(), first[3])
    assert not np.array_equal(SyntheticFaces("test", 5, 4, seed=7)[3][0].numpy(), first[3])
    x, y = a[0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (64, 64, 3) and isinstance(y, int)


def test_train_and_test_identities_are_disjoint():
    train = SyntheticFaces("train", num_classes=50, images_per_class=2, seed=1)
    test = SyntheticFaces("test", num_classes=50, images_per_class=2, seed=1)
    d = np.linalg.norm(train.identities[:, None, :] - test.identities[None, :, :], axis=-1)
    within = np.linalg.norm(train.identities[:, None, :] - train.identities[None, :, :], axis=-1)
    within = within[~np.eye(50, dtype=bool)]
    assert d.min() > 0.5 * within.min() > 0  # no test identity is (close to) a training identity


def test_long_tail_class_sizes():
    ds = SyntheticFaces(num_classes=10, images_per_class=20, imbalance=1.0, min_images=2, quality=None)
    # round(20 / (c + 1)) by hand, floored at 2: 20, 10, 6.67, 5, 4, 3.33, 2.86, 2.5 (half to even), 2.22, 2
    assert ds.class_counts().tolist() == [20, 10, 7, 5, 4, 3, 3, 2, 2, 2]
    assert len(ds) == 58 and np.all(np.diff(ds.true_labels) >= 0)
    assert SyntheticFaces(num_classes=4, images_per_class=3, quality=None).class_counts().tolist() == [3, 3, 3, 3]


def test_label_noise_flips_to_another_class_at_the_given_rate():
    p, n = 0.3, 4000
    noisy = SyntheticFaces(num_classes=40, images_per_class=100, label_noise=p, quality=None)
    flipped = noisy.labels != noisy.true_labels
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(flipped.mean() - p) < 5 * sd
    assert noisy.labels.min() >= 0 and noisy.labels.max() < 40
    clean = SyntheticFaces(num_classes=40, images_per_class=100, quality=None)
    assert np.array_equal(clean.labels, clean.true_labels)
    i = int(np.flatnonzero(flipped)[0])
    np.testing.assert_array_equal(noisy.render(i), clean.render(i))  # the image itself is unchanged
    assert noisy[i][1] == noisy.labels[i] != noisy.true_labels[i]


def _pair(kind: str, value: float, n: int = 6):
    clean = SyntheticFaces(num_classes=3, images_per_class=2, quality=None)
    deg = SyntheticFaces(num_classes=3, images_per_class=2, quality=only(kind, value), degrade_prob=1.0)
    return clean, deg


def test_brightness_is_applied_and_recorded():
    clean, deg = _pair("brightness", 0.5)
    for i in range(len(clean)):
        a, b = clean.render(i).astype(float), deg.render(i).astype(float)
        assert np.abs(b - a * 0.5).max() <= 1.0  # both rounded from the same float image
        assert deg.quality[i] == {"blur": 0.0, "noise": 0.0, "occlusion": 0.0, "brightness": 0.5}
    np.testing.assert_allclose(deg.quality_score, 0.5)  # severity |ln 0.5| / ln 2 = 1 -> 1 - 1/2


def test_noise_is_applied_and_recorded():
    clean, deg = _pair("noise", 10.0)
    diff = np.concatenate([(deg.render(i).astype(float) - clean.render(i)).ravel() for i in range(len(clean))])
    assert abs(diff.std() - 10.0) < 0.6 and abs(diff.mean()) < 0.3
    np.testing.assert_allclose(deg.quality_score, 0.75)  # severity 10 / 20


def test_occlusion_covers_one_rectangle_of_the_recorded_area():
    clean, deg = _pair("occlusion", 0.2)
    for i in range(len(clean)):
        changed = np.any(deg.render(i) != clean.render(i), axis=-1)
        ys, xs = np.nonzero(changed)
        box = changed[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert box.mean() > 0.97  # one filled rectangle
        assert changed.sum() <= 0.2 * 64 * 64 + 2 * 64 and changed.sum() > 0.02 * 64 * 64
    np.testing.assert_allclose(deg.quality_score, 1 - (0.2 / 0.3) / 2)


def test_blur_lowers_high_frequencies():
    clean, deg = _pair("blur", 1.5)
    for i in range(len(clean)):
        a, b = clean.render(i).astype(float), deg.render(i).astype(float)
        assert np.abs(np.diff(b, axis=1)).mean() < 0.8 * np.abs(np.diff(a, axis=1)).mean()
    np.testing.assert_allclose(deg.quality_score, 1 - 0.75 / 2)


def test_quality_score_matches_the_documented_formula_and_degrade_prob():
    ds = SyntheticFaces(num_classes=20, images_per_class=20, degrade_prob=0.4)
    q, score = ds.quality, ds.quality_score
    expected = [(1 - min(1, r["blur"] / 2) / 2) * (1 - min(1, r["noise"] / 20) / 2)
                * (1 - min(1, r["occlusion"] / 0.3) / 2) * (1 - min(1, abs(math.log(r["brightness"])) / math.log(2)) / 2)
                for r in q]
    np.testing.assert_allclose(score, expected, rtol=1e-12)
    applied = np.mean([r["blur"] > 0 for r in q])
    assert abs(applied - 0.4) < 5 * math.sqrt(0.4 * 0.6 / len(q))
    assert score.max() == 1.0 and score.min() < 0.6
    clean = SyntheticFaces(num_classes=20, images_per_class=20, quality=None)
    untouched = np.flatnonzero(score == 1.0)[:5]  # no degradation drawn: identical to the generator without any
    for i in untouched:
        np.testing.assert_array_equal(ds.render(int(i)), clean.render(int(i)))


def test_intra_class_zero_keeps_the_face_fixed():
    ds = SyntheticFaces(num_classes=2, images_per_class=4, intra_class=0.0, quality=None)
    centre = [ds.render(i)[24:40, 24:40] for i in range(4)]
    for c in centre[1:]:
        np.testing.assert_array_equal(c, centre[0])
    assert not np.array_equal(ds.render(4)[24:40, 24:40], centre[0])  # another identity


def _ridge_probe_accuracy(intra_class: float, seed: int = 0) -> float:
    from sklearn.linear_model import RidgeClassifier

    n = 15
    ds = SyntheticFaces(num_classes=8, images_per_class=n, image_size=32, seed=seed, intra_class=intra_class)
    x = np.stack([ds.render(i) for i in range(len(ds))]).reshape(len(ds), -1).astype(np.float32) / 255
    train = np.arange(len(ds)) % n < 10  # same identities, held-out images
    clf = RidgeClassifier(alpha=10.0).fit(x[train], ds.labels[train])
    return float((clf.predict(x[~train]) == ds.labels[~train]).mean())


def test_classes_are_learnable_but_intra_class_variation_makes_them_harder():
    chance = 1 / 8
    base = _ridge_probe_accuracy(1.0)
    assert base > 3 * chance  # a linear probe on raw pixels beats chance by a margin
    assert _ridge_probe_accuracy(0.2) > _ridge_probe_accuracy(2.5) + 0.2


def test_rendering_is_fast():
    ds = SyntheticFaces(num_classes=10, images_per_class=10, cache=False)
    ds.render(0)
    t = time.process_time()
    for i in range(len(ds)):
        ds.render(i)
    per_image = (time.process_time() - t) / len(ds)
    assert per_image < 5e-3, f"{per_image * 1e3:.2f} ms per 64x64 image"  # 1-1.7 ms measured on a busy shared CPU


def test_open_dataset_synthetic_and_describe():
    ds = open_dataset("synthetic", seed=3, num_classes=4, images_per_class=3, imbalance=0.5)
    assert isinstance(ds, SyntheticFaces) and ds.split == "train" and ds.seed == 3
    d = json.loads(json.dumps(ds.describe()))
    assert d["kind"] == "synthetic" and d["num_images"] == len(ds) and d["options"]["imbalance"] == 0.5
    with pytest.raises(ValueError, match="unknown quality keys"):
        SyntheticFaces(quality={"fog": (0, 1)})
    with pytest.raises(ValueError, match=r"\['brightness'\]"):
        SyntheticFaces(quality={"brightness": (0.0, 1.0)})
    with pytest.raises(ValueError, match=r"\['noise'\]"):
        SyntheticFaces(quality={"noise": (5.0, 1.0)})


def test_write_test_protocol_is_read_by_the_folder_protocol(tmp_path):
    from fr_bench.protocols import load_protocol

    opts = dict(num_classes=5, images_per_class=4, imbalance=0.5, seed=2)
    out = write_test_protocol(tmp_path / "syn", **opts)
    ds = SyntheticFaces("test", **opts)
    sizes = ds.class_counts()
    n_genuine = int(sum(k * (k - 1) // 2 for k in sizes.tolist()))
    proto = load_protocol("folder", out, pairs="pairs.txt")
    assert len(proto.images) == len(ds) == int(sizes.sum())
    assert int(proto.labels.sum()) == n_genuine and len(proto.labels) == 2 * n_genuine
    generated = load_protocol("folder", out)  # the protocol's own pair generation works on the tree too
    assert len(generated.images) == len(ds) and int(generated.labels.sum()) == n_genuine
    keys = [proto.images.ref(i).key for i in range(len(proto.images))]
    with open(out / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"image", "score"} and {r["image"] for r in rows} == set(keys)
    score = {r["image"]: float(r["score"]) for r in rows}
    rel0 = "id00000/000000.png"
    assert score[rel0] == ds.quality_score[0]
    img = proto.images.load(keys.index(rel0))
    assert img.shape == (112, 112, 3)
    small = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR), dtype=float)
    assert np.abs(small - ds.render(0)).mean() < 8  # the upsampled synthetic image
    assert write_test_protocol(tmp_path / "syn", **opts) == out  # same options: kept as is
    with pytest.raises(FileExistsError, match="syn"):
        write_test_protocol(tmp_path / "syn", **{**opts, "seed": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no temporary folder left behind


def test_nuisance_stream_renders_the_same_identities_anew():
    opts = {"split": "train", "num_classes": 3, "images_per_class": 2, "image_size": 32, "seed": 5}
    base, held, again, other = (SyntheticFaces(**opts, nuisance_stream=k) for k in (0, 1, 1, 2))
    np.testing.assert_array_equal(held.identities, base.identities)
    np.testing.assert_array_equal(held.labels, base.labels)
    assert held.describe()["options"]["nuisance_stream"] == 1 and "nuisance_stream" not in base.options
    for i in range(len(base)):
        np.testing.assert_array_equal(held.render(i), again.render(i))  # deterministic
        assert not np.array_equal(held.render(i), base.render(i)) and not np.array_equal(held.render(i),
                                                                                          other.render(i))
    with pytest.raises(ValueError, match="nuisance_stream"):
        SyntheticFaces(**opts, nuisance_stream=-1)
