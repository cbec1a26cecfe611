"""Adversarial review of the data path: stale-cache identities, the restricted unpickler, scores-file keys."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from embed_fixtures import TinyNet, tiny_embedder
from writers import tiny_face, write_bin, write_image

from fr_bench import runner
from fr_bench.extract import extract
from fr_bench.models import load_model
from fr_bench.protocols.array_images import ArrayImageSource
from fr_bench.protocols.binpack import RestrictedUnpickler, read_bin
from fr_bench.protocols.images import BinPackImageSource, FileImageSource

TEMPLATE_LIKE = np.array([[50.0, 60.0], [100.0, 60.0], [75.0, 85.0], [55.0, 110.0], [95.0, 110.0]])


def _run(source, emb, cache_dir, **kw):
    return extract(source, emb, batch_size=4, num_workers=0, progress=False, cache_dir=cache_dir, flip=False, **kw)


def _raw_tree(root, n=4):
    rels = []
    for i in range(n):
        rel = f"p{i % 2}/img_{i}.jpg"
        write_image(root / rel, np.random.default_rng(i).integers(0, 256, (150, 150, 3), dtype=np.uint8))
        rels.append(rel)
    return rels


@pytest.mark.parametrize("source_class", [FileImageSource, ArrayImageSource])
def test_changed_landmarks_for_the_same_keys_are_not_served_from_cache(tmp_path, source_class):
    rels = _raw_tree(tmp_path / "data")
    lm_a = np.repeat(TEMPLATE_LIKE[None], len(rels), axis=0)
    lm_b = lm_a + np.array([7.0, -5.0])  # another detector: same images, same keys, other crops
    emb = tiny_embedder()
    first = _run(source_class(tmp_path / "data", rels, lm_a), emb, tmp_path / "cache")
    src_b = source_class(tmp_path / "data", rels, lm_b)
    assert src_b.keys() == source_class(tmp_path / "data", rels, lm_a).keys()
    second = _run(src_b, emb, tmp_path / "cache")
    fresh = _run(src_b, emb, None)
    assert not second.from_cache
    assert second.fingerprint != first.fingerprint
    np.testing.assert_array_equal(second.features, fresh.features)
    assert _run(src_b, emb, tmp_path / "cache").from_cache  # same recipe: served


def test_two_packs_with_one_file_name_and_other_images_are_not_served_from_cache(tmp_path):
    imgs_a = [tiny_face(i) for i in range(4)]
    imgs_b = [tiny_face(100 + i) for i in range(4)]
    pack_a = write_bin(tmp_path / "a" / "lfw.bin", imgs_a, [True, False])
    pack_b = write_bin(tmp_path / "b" / "lfw.bin", imgs_b, [True, False])
    emb = tiny_embedder()
    src_a = BinPackImageSource(pack_a, 4, bins=read_bin(pack_a)[0])
    src_b = BinPackImageSource(pack_b, 4, bins=read_bin(pack_b)[0])
    assert src_a.keys() == src_b.keys()  # "lfw.bin#i": keys alone cannot tell the copies apart
    _run(src_a, emb, tmp_path / "cache")
    second = _run(src_b, emb, tmp_path / "cache")
    assert not second.from_cache
    np.testing.assert_array_equal(second.features, _run(src_b, emb, None).features)


def _folder_root(root, seed):
    for person in ("ann", "bob", "cat"):
        for k in range(3):
            write_image(root / person / f"{k}.png", tiny_face(seed + 10 * ord(person[0]) + k))
    return root


def test_two_folder_roots_with_the_same_file_names_are_not_served_from_cache(tmp_path):
    """Keys are relative paths: a second aligned copy of a data set must not reuse the first one's rows."""
    a = _folder_root(tmp_path / "aligned_v1", 0)
    b = _folder_root(tmp_path / "aligned_v2", 1000)
    net = TinyNet()
    kw = dict(cache_dir=tmp_path / "cache", num_workers=0, progress=False, device="cpu", batch_size=8)
    assert not runner.prepare(net, "folder", a, **kw).embeddings.from_cache  # fills the cache for root a
    prep_b = runner.prepare(net, "folder", b, **kw)
    proto_b, emb_b = prep_b.protocol, prep_b.embeddings
    assert not emb_b.from_cache
    fresh = extract(proto_b.images, load_model(net), num_workers=0, progress=False)
    np.testing.assert_allclose(emb_b.features, fresh.features, rtol=1e-5, atol=1e-5)


def test_scores_files_of_runs_with_other_protocol_options_do_not_overwrite_each_other(tmp_path):
    root = _folder_root(tmp_path / "faces", 0)
    net = TinyNet()
    kw = dict(cache_dir=tmp_path / "cache", num_workers=0, progress=False, device="cpu", batch_size=8)
    ev0 = runner.evaluate_model(net, "folder", root, protocol_options={"seed": 0}, **kw)
    ev1 = runner.evaluate_model(net, "folder", root, protocol_options={"seed": 1}, **kw)
    assert ev0.record.scores_file != ev1.record.scores_file
    from fr_bench.results import read_scores

    np.testing.assert_array_equal(read_scores(ev0.record.scores_file)[0].pairs.labels, ev0.result.scores.pairs.labels)


class _ObjectArrayFromBuffer:
    """Pickles as ``numpy.ndarray((2,), object, buffer)``: an object array whose pointers are the buffer's bytes."""

    def __reduce__(self):
        return (np.ndarray, ((2,), np.dtype(object), bytes(16)))


def test_unpickler_refuses_object_arrays_built_from_raw_bytes():
    """Calling numpy.ndarray directly with a buffer makes object pointers from file bytes (memory corruption with
    non-zero bytes; zeros here read as None, so the test itself is safe)."""
    data = pickle.dumps(([_ObjectArrayFromBuffer()], [True]), protocol=2)
    with pytest.raises(Exception, match="ndarray"):
        RestrictedUnpickler(io.BytesIO(data), source="evil.bin", encoding="bytes").load()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickler_still_reads_numpy_arrays_of_every_pickle_protocol(tmp_path, protocol):
    imgs = [tiny_face(i) for i in range(4)]
    path = write_bin(tmp_path / "x.bin", imgs, [True, False], item_type="ndarray", label_type="array",
                     protocol=protocol)
    bins, issame = read_bin(path)
    assert [bool(v) for v in issame] == [True, False]
    assert all(isinstance(b, np.ndarray) and b.dtype == np.uint8 for b in bins)
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = b"a", b"b"
    back = RestrictedUnpickler(io.BytesIO(pickle.dumps((obj, [True]), protocol=protocol)), source="t",
                               encoding="bytes").load()
    assert list(back[0]) == [b"a", b"b"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast applies on CUDA only")
def test_amp_setting_is_part_of_the_cache_identity_on_cuda(tmp_path):
    from fr_bench.protocols.images import FileImageSource as Src

    rels = _raw_tree(tmp_path / "data")
    src = Src(tmp_path / "data", rels, np.repeat(TEMPLATE_LIKE[None], len(rels), axis=0))
    emb = load_model(TinyNet(), device="cuda")
    _run(src, emb, tmp_path / "cache", amp="bf16")
    assert not _run(src, emb, tmp_path / "cache", amp=False).from_cache
