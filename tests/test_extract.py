"""fr_bench.extract: flip sums, bad images, NaN outputs, colour spaces, workers and multi-process sharding."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from embed_fixtures import ArraySource, JpegFileSource, NaNAfter, TinyNet, direct, random_crops, tiny_embedder
from fr_bench.extract import Embeddings, ImageDecodeError, extract, shard_rows
from fr_bench.models import NonFiniteOutputError, load_model


def test_flip_is_the_sum_of_image_and_mirror_features():
    imgs = random_crops(7)
    emb = tiny_embedder()
    out = extract(ArraySource(imgs), emb, batch_size=3, num_workers=0, progress=False, flip=True)
    assert isinstance(out, Embeddings) and out.features.shape == (7, 8) and out.features.dtype == np.float32
    expected = direct(emb.module, imgs) + direct(emb.module, imgs[:, :, ::-1].copy())
    np.testing.assert_allclose(out.features, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.norms, np.linalg.norm(expected, axis=1), rtol=1e-4)
    plain = extract(ArraySource(imgs), emb, batch_size=4, num_workers=0, progress=False, flip=False)
    np.testing.assert_allclose(plain.features, direct(emb.module, imgs), rtol=1e-4, atol=1e-4)
    assert not out.from_cache and out.n_skipped == 0 and out.timings["computed"] == 7


def test_bgr_source_is_converted_to_the_model_order():
    imgs = random_crops(4, seed=1)
    emb = tiny_embedder()
    rgb = extract(ArraySource(imgs), emb, num_workers=0, progress=False)
    bgr = extract(ArraySource(imgs[..., ::-1].copy(), color_space="BGR"), emb, num_workers=0, progress=False)
    np.testing.assert_allclose(bgr.features, rgb.features, rtol=1e-5, atol=1e-5)


def test_bad_image_error_names_index_and_key():
    source = ArraySource(random_crops(6), fail={4: ValueError("broken bytes")})
    with pytest.raises(ImageDecodeError, match=r"cannot decode image 4 \(set/person_1/img_0004.jpg\).*broken bytes"):
        extract(source, tiny_embedder(), batch_size=2, num_workers=0, progress=False)


def test_corrupt_jpeg_named_and_skipped(tmp_path):
    imgs = random_crops(5, seed=2)
    source = JpegFileSource(tmp_path, imgs)
    with open(source.files[2], "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg")
    emb = tiny_embedder()
    with pytest.raises(ImageDecodeError, match=r"image 2 \(jpeg/0002.jpg\).*0002.jpg"):
        extract(source, emb, batch_size=2, num_workers=0, progress=False)
    out = extract(source, emb, batch_size=2, num_workers=0, progress=False, skip_bad_images=True, flip=False)
    assert out.n_skipped == 1 and out.skipped[0][:2] == (2, "jpeg/0002.jpg") and "Image" in out.skipped[0][2]
    assert np.isnan(out.features[2]).all() and np.isnan(out.norms[2])
    good = [0, 1, 3, 4]
    decoded = np.stack([source.load(i) for i in good])
    np.testing.assert_allclose(out.features[good], direct(emb.module, decoded), rtol=1e-4, atol=1e-4)


def test_wrong_crop_shape_is_a_bad_image():
    class Small(ArraySource):
        def load(self, i):
            return np.zeros((100, 100, 3), np.uint8) if i == 1 else super().load(i)

    with pytest.raises(ImageDecodeError, match=r"image 1 .*112x112x3 uint8.*\(100, 100, 3\)"):
        extract(Small(random_crops(3)), tiny_embedder(), num_workers=0, progress=False)


def test_nan_output_error_names_model_and_batch():
    emb = load_model(NaNAfter(k=3), name="nan-after-two")  # the load-time probe is call 1
    with pytest.raises(NonFiniteOutputError, match=r"nan-after-two.*batch 2 \(images 4\.\.5"):
        extract(ArraySource(random_crops(6)), emb, batch_size=2, num_workers=0, progress=False, flip=False)


def test_worker_processes_give_the_same_features():
    imgs = random_crops(6, seed=3)
    emb = tiny_embedder()
    a = extract(ArraySource(imgs), emb, batch_size=4, num_workers=0, progress=False)
    b = extract(ArraySource(imgs), emb, batch_size=4, num_workers=1, progress=False)
    np.testing.assert_array_equal(a.features, b.features)


def test_device_mismatch_and_spec_strings(tmp_path):
    emb = tiny_embedder()
    with pytest.raises(ValueError, match="loaded on cpu"):
        extract(ArraySource(random_crops(2)), emb, device="cuda:1", progress=False)
    path = tmp_path / "tiny.pt"
    torch.jit.script(TinyNet()).save(str(path))
    out = extract(ArraySource(random_crops(2)), str(path), device="cpu", num_workers=0, progress=False)
    assert out.features.shape == (2, 8) and out.device == "cpu"


def test_shard_rows_cover_every_row_once():
    rows = np.arange(3, 20)
    for world in (1, 2, 3, 5):
        shards = [shard_rows(rows, r, world) for r in range(world)]
        np.testing.assert_array_equal(np.concatenate(shards), rows)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError):
        shard_rows(rows, 2, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank: int, world: int, port: int, imgs: np.ndarray, queue) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world)
    try:
        torch.set_num_threads(1)
        emb = tiny_embedder()
        out = extract(ArraySource(imgs), emb, batch_size=2, num_workers=0, progress=False, flip=True)
        queue.put((rank, out.features, emb.module.rows_seen))
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_gloo_run_shards_and_gathers():
    imgs = random_crops(7, seed=4)
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = torch.multiprocessing.start_processes(
        _distributed_worker, args=(2, _free_port(), imgs, queue), nprocs=2, join=False, start_method="spawn")
    results = sorted(queue.get(timeout=120) for _ in range(2))
    procs.join(timeout=60)
    emb = tiny_embedder()
    expected = direct(emb.module, imgs) + direct(emb.module, imgs[:, :, ::-1].copy())
    for rank, feats, rows_seen in results:
        np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-4)  # every rank gets all rows
        # each rank embedded only its shard (x2 for the mirrored copies), not all 7 images
        assert rows_seen == 2 * len(shard_rows(np.arange(7), rank, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast runs on CUDA only")
def test_bf16_on_cuda_is_close_to_float32():
    imgs = random_crops(8, seed=5)
    emb = load_model(TinyNet(), device="cuda")
    f32 = extract(ArraySource(imgs), emb, amp=False, num_workers=0, progress=False)
    bf16 = extract(ArraySource(imgs), emb, amp="bf16", num_workers=0, progress=False)
    cos = np.sum(f32.features * bf16.features, 1) / f32.norms / bf16.norms
    assert cos.min() > 0.99


def _failing_worker(rank: int, world: int, port: int, imgs: np.ndarray, queue) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world)
    try:
        torch.set_num_threads(1)
        source = ArraySource(imgs, fail={6: ValueError("broken bytes")})  # row 6 is in rank 1's shard
        try:
            extract(source, tiny_embedder(), batch_size=2, num_workers=0, progress=False)
            queue.put((rank, "no error"))
        except RuntimeError as exc:
            queue.put((rank, str(exc)))
    finally:
        torch.distributed.destroy_process_group()


def test_a_bad_image_on_one_rank_stops_every_rank_instead_of_hanging():
    imgs = random_crops(7, seed=4)
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = torch.multiprocessing.start_processes(
        _failing_worker, args=(2, _free_port(), imgs, queue), nprocs=2, join=False, start_method="spawn")
    results = sorted(queue.get(timeout=120) for _ in range(2))
    procs.join(timeout=60)
    for _rank, message in results:
        assert "rank 1" in message and "cannot decode image 6" in message and "broken bytes" in message
