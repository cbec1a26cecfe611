"""fr_bench.cache: resume after a crash, stale entries never served, corrupt files recomputed (scores: test_results)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from filelock import FileLock

from fr_bench.cache import default_cache_dir
from fr_bench.extract import ImageDecodeError, extract
from fr_bench.models import load_model
from embed_fixtures import ArraySource, TinyNet, direct, random_crops, tiny_embedder


def run(source, emb, cache_dir, **kw):
    kw.setdefault("flip", False)
    return extract(source, emb, batch_size=4, num_workers=0, progress=False, cache_dir=cache_dir, **kw)


def only_file(cache_dir):
    files = sorted((cache_dir / "embeddings").glob("*.h5"))
    assert len(files) == 1
    return files[0]


def test_resume_after_a_crash_computes_only_the_missing_rows(tmp_path):
    imgs = random_crops(16)
    emb = tiny_embedder()
    crashing = ArraySource(imgs, fail={10: RuntimeError("disk went away")})
    with pytest.raises(ImageDecodeError, match="image 10"):
        run(crashing, emb, tmp_path)
    # batches of 4: rows 0..7 completed before the batch holding image 10 failed
    assert emb.module.rows_seen == 8
    with h5py.File(only_file(tmp_path), "r") as f:
        np.testing.assert_array_equal(np.flatnonzero(f["done"][...]), np.arange(8))

    emb.module.rows_seen = 0
    resumed = run(ArraySource(imgs), emb, tmp_path)
    assert emb.module.rows_seen == 8 and resumed.timings["computed"] == 8 and not resumed.from_cache
    np.testing.assert_allclose(resumed.features, direct(emb.module, imgs), rtol=1e-4, atol=1e-4)

    emb.module.rows_seen = 0
    again = run(ArraySource(imgs), emb, tmp_path)
    assert emb.module.rows_seen == 0 and again.from_cache
    np.testing.assert_array_equal(again.features, resumed.features)


def test_rows_without_completion_record_are_not_served(tmp_path):
    imgs = random_crops(8, seed=1)
    emb = tiny_embedder()
    first = run(ArraySource(imgs), emb, tmp_path)
    with h5py.File(only_file(tmp_path), "a") as f:  # a crash between writing rows and setting their flags
        f["features"][0:4] = 1e6
        f["done"][0:4] = False
    emb.module.rows_seen = 0
    second = run(ArraySource(imgs), emb, tmp_path)
    assert emb.module.rows_seen == 4
    np.testing.assert_array_equal(second.features, first.features)


def test_changed_model_bytes_image_list_flip_or_preprocessing_are_not_served(tmp_path):
    imgs = random_crops(6, seed=2)
    path = tmp_path / "tiny.pt"
    net = TinyNet()
    torch.jit.script(net).save(str(path))
    cache = tmp_path / "cache"
    base = run(ArraySource(imgs), load_model(path), cache)
    assert run(ArraySource(imgs), load_model(path), cache).from_cache

    with torch.no_grad():
        net.fc.bias.add_(1.0)
    torch.jit.script(net).save(str(path))  # same path, new bytes
    changed = run(ArraySource(imgs), load_model(path), cache)
    assert not changed.from_cache
    np.testing.assert_allclose(changed.features, base.features + 1.0, rtol=1e-4, atol=1e-4)

    emb = load_model(path)
    assert not run(ArraySource(imgs, prefix="other"), emb, cache).from_cache  # other keys, same pixels
    assert not run(ArraySource(imgs), emb, cache, flip=True).from_cache
    assert not run(ArraySource(imgs), load_model(path, mean=0.0, std=1.0), cache).from_cache
    assert run(ArraySource(imgs), emb, cache, flip=True).from_cache


def test_stored_identity_is_checked_on_open(tmp_path):
    imgs = random_crops(5, seed=3)
    emb = tiny_embedder()
    first = run(ArraySource(imgs), emb, tmp_path)
    with h5py.File(only_file(tmp_path), "a") as f:
        f["features"][...] = 0.0
        f.attrs["identity"] = f.attrs["identity"].replace('"flip":"none"', '"flip":"sum"')
    with pytest.warns(UserWarning, match="stale"):
        second = run(ArraySource(imgs), emb, tmp_path)
    assert not second.from_cache
    np.testing.assert_array_equal(second.features, first.features)


def test_corrupt_cache_file_is_discarded_and_recomputed(tmp_path):
    imgs = random_crops(5, seed=4)
    emb = tiny_embedder()
    first = run(ArraySource(imgs), emb, tmp_path)
    path = only_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated
    with pytest.warns(UserWarning, match="discarding embedding cache"):
        second = run(ArraySource(imgs), emb, tmp_path)
    assert not second.from_cache
    np.testing.assert_array_equal(second.features, first.features)
    assert run(ArraySource(imgs), emb, tmp_path).from_cache  # rebuilt


def test_locked_entry_is_neither_read_nor_written(tmp_path):
    imgs = random_crops(4, seed=5)
    emb = tiny_embedder()
    run(ArraySource(imgs), emb, tmp_path)
    path = only_file(tmp_path)
    mtime = path.stat().st_mtime_ns
    with FileLock(str(path) + ".lock"):
        with pytest.warns(UserWarning, match="another process"):
            out = run(ArraySource(imgs), emb, tmp_path)
    assert not out.from_cache and path.stat().st_mtime_ns == mtime


def test_skipped_rows_are_retried_next_run(tmp_path):
    imgs = random_crops(6, seed=6)
    emb = tiny_embedder()
    out = run(ArraySource(imgs, fail={3: OSError("unreadable")}), emb, tmp_path, skip_bad_images=True)
    assert out.n_skipped == 1 and np.isnan(out.features[3]).all()
    emb.module.rows_seen = 0
    fixed = run(ArraySource(imgs), emb, tmp_path)
    assert emb.module.rows_seen == 1 and not np.isnan(fixed.features).any()


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FRBENCH_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("FRBENCH_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "fr_bench")
