"""Training data: ImageFolder trees (labels, clear errors) and the model-input transform shared with evaluation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

import fr_bench.train.data as data_mod
from fr_bench.models import Preprocessing
from fr_bench.train.data import DataError, ImageFolder, make_transform, open_dataset


def _img(seed: int, h: int = 20, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture()
def tree(tmp_path):
    """Classes 'bob' (2 images), 'alice' (1), 'carol' (3) written out of order, plus files to be skipped."""
    root = tmp_path / "faces"
    images = {}
    for c, (name, n) in enumerate((("bob", 2), ("alice", 1), ("carol", 3))):
        (root / name).mkdir(parents=True)
        for k in range(n):
            img = _img(10 * c + k, h=20 + k)
            ext = ".png" if k % 2 == 0 else ".PNG"
            Image.fromarray(img).save(root / name / f"{k:02d}{ext}", format="PNG")
            images[(name, k)] = img
    (root / "bob" / "notes.txt").write_text("not an image")
    (root / "bob" / ".hidden.png").write_bytes(b"junk")
    (root / ".cache").mkdir()
    (root / "README").write_text("ignored")
    return root, images


def test_labels_follow_sorted_identity_names(tree):
    root, images = tree
    ds = ImageFolder(root)
    assert ds.class_names == ["alice", "bob", "carol"] and ds.num_classes == 3
    assert ds.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert ds.relpaths[1:3] == ["bob/00.png", "bob/01.PNG"]
    for i, (name, k) in enumerate([("alice", 0), ("bob", 0), ("bob", 1), ("carol", 0), ("carol", 1), ("carol", 2)]):
        x, y = ds[i]
        assert x.dtype == torch.uint8 and y == ds.class_names.index(name)
        np.testing.assert_array_equal(x.numpy(), images[(name, k)])  # stored size, RGB
    assert ds.class_counts().tolist() == [1, 2, 3]
    d = ds.describe()
    assert d["kind"] == "image-folder" and d["num_images"] == 6 and d["min_per_class"] == 1
    assert isinstance(open_dataset(root), ImageFolder) and len(pickle.loads(pickle.dumps(ds))) == 6
    ds.verify()


def test_empty_class_folder_is_named(tree):
    root, _ = tree
    (root / "dave").mkdir()
    (root / "dave" / "list.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"dave: class folder has no images"):
        ImageFolder(root)


def test_no_classes_and_missing_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders found"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(DataError, match=r"nowhere: training data not found"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"nowhere: not a folder"):
        ImageFolder(tmp_path / "nowhere")


def test_image_directly_under_the_root(tree):
    root, _ = tree
    Image.fromarray(_img(1)).save(root / "stray.jpg")
    with pytest.raises(DataError, match=r"stray\.jpg: image directly under the root"):
        ImageFolder(root)


def test_unreadable_image_is_named_when_read(tree):
    root, _ = tree
    bad = root / "bob" / "02.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    ds = ImageFolder(root)  # opening does not decode
    i = ds.relpaths.index("bob/02.jpg")
    with pytest.raises(DataError, match=r"bob/02\.jpg: cannot decode the image"):
        ds[i]
    with pytest.raises(DataError, match=r"bob/02\.jpg"):
        ds.verify()
    bad.unlink()
    with pytest.raises(DataError, match=r"bob/02\.jpg: image file not found"):
        ds[i]


def test_decompression_bomb_guard(tree, monkeypatch):
    root, _ = tree
    monkeypatch.setattr(data_mod, "MAX_IMAGE_PIXELS", 16 * 16)
    with pytest.raises(DataError, match=r"alice/00\.png: image is 16x20, over the 256 pixel limit"):
        ImageFolder(root)[0]


def test_options_do_not_apply_to_a_folder(tree):
    with pytest.raises(TypeError, match="ImageFolder"):
        open_dataset(tree[0], num_classes=3)


# -- make_transform -------------------------------------------------------------------------------------------------


def _by_hand(img: np.ndarray, mean, std, bgr: bool = False) -> np.ndarray:
    x = img.astype(np.float64)
    if bgr:
        x = x[..., ::-1]
    return ((x - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1)


def test_eval_transform_is_the_input_contract():
    img = _img(5, 12, 12)
    prep = Preprocessing(input_size=(12, 12), mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    out = make_transform(prep, train=False, flip=True)(img)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 12, 12) and out.is_contiguous()
    np.testing.assert_allclose(out.numpy(), _by_hand(img, prep.mean, prep.std), rtol=1e-6)
    bgr = Preprocessing(input_size=(12, 12), channel_order="BGR", mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    np.testing.assert_allclose(make_transform(bgr, train=False, flip=False)(torch.from_numpy(img)).numpy(),
                               _by_hand(img, bgr.mean, bgr.std, bgr=True), rtol=1e-6)
    batch = make_transform(prep.to_dict(), train=False, flip=False)(np.stack([img, img]))
    assert tuple(batch.shape) == (2, 3, 12, 12)
    with pytest.raises(TypeError, match="uint8"):
        make_transform(prep, train=False, flip=False)(img.astype(np.float32))


def test_train_flip_is_random_and_only_when_asked():
    img = _img(7, 8, 8)
    prep = Preprocessing(input_size=(8, 8))
    plain = make_transform(prep, train=False, flip=True)(img).numpy()
    mirrored = plain[:, :, ::-1]
    batch = np.repeat(img[None], 400, axis=0)
    torch.manual_seed(0)
    out = make_transform(prep, train=True, flip=True)(batch).numpy()
    is_plain = np.all(out == plain, axis=(1, 2, 3))
    is_mirror = np.all(out == mirrored, axis=(1, 2, 3))
    assert np.all(is_plain ^ is_mirror)  # each image is the input or its mirror image, nothing else
    assert 140 < is_mirror.sum() < 260  # p = 1/2: 400 draws, +-6 sd
    singles = [make_transform(prep, train=True, flip=True)(img).numpy() for _ in range(40)]
    assert any(np.array_equal(s, mirrored) for s in singles) and any(np.array_equal(s, plain) for s in singles)
    for t in (make_transform(prep, train=True, flip=False), make_transform(prep, train=False, flip=True)):
        np.testing.assert_array_equal(t(batch[:50]).numpy(), np.repeat(plain[None], 50, axis=0))
    assert pickle.loads(pickle.dumps(make_transform(prep, train=True, flip=True))).flip


def test_dataloader_over_synthetic_data_with_the_transform():
    ds = open_dataset("synthetic", num_classes=3, images_per_class=4, image_size=32, quality=None)
    tf = make_transform(Preprocessing(input_size=(32, 32)), train=True, flip=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False)
    x, y = next(iter(loader))
    assert x.dtype == torch.uint8 and tuple(x.shape) == (5, 32, 32, 3) and y.tolist() == [0, 0, 0, 0, 1]
    assert tuple(tf(x).shape) == (5, 3, 32, 32)
