"""Extraction whose record can be trusted: the flip convention is named, decided once and recorded; non-finite rows
are never served from the cache nor skipped uncounted; the batch size follows the device; the device recorded is the
one used."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from embed_fixtures import ArraySource, ChangesFrom, TinyNet, direct, random_crops, tiny_embedder
from fr_bench import runner
from fr_bench.extract import default_batch_size, extract
from fr_bench.models import NonFiniteOutputError, load_model
from fr_bench.models.base import ModelOutputError


def _run(source, emb, **kw):
    kw.setdefault("num_workers", 0)
    kw.setdefault("progress", False)
    return extract(source, emb, **kw)


# -- flip conventions ---------------------------------------------------------------------------------------------
def test_flip_conventions_against_a_direct_forward_pass():
    imgs = random_crops(5, seed=11)
    emb = tiny_embedder()
    plain, mirror = direct(emb.module, imgs), direct(emb.module, imgs[:, :, ::-1].copy())
    concat = _run(ArraySource(imgs), emb, batch_size=2, flip="concat")
    assert concat.flip == "concat" and concat.features.shape == (5, 16)
    np.testing.assert_allclose(concat.features, np.concatenate([plain, mirror], axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_run(ArraySource(imgs), emb, flip="sum").features, plain + mirror, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(_run(ArraySource(imgs), emb, flip="none").features, plain, rtol=1e-4, atol=1e-4)
    assert _run(ArraySource(imgs), emb, flip=True).flip == "sum"
    assert _run(ArraySource(imgs), emb, flip=False).flip == "none"
    with pytest.raises(ValueError, match=r"unknown flip convention 'mirror'.*sum, concat, none"):
        _run(ArraySource(imgs), emb, flip="mirror")


def test_each_flip_convention_has_its_own_cache_entry(tmp_path):
    imgs = random_crops(4, seed=12)
    emb = tiny_embedder()
    first = {m: _run(ArraySource(imgs), emb, flip=m, cache_dir=tmp_path) for m in ("sum", "concat", "none")}
    assert not any(e.from_cache for e in first.values())
    assert len(list((tmp_path / "embeddings").glob("*.h5"))) == 3
    for mode, e in first.items():
        again = _run(ArraySource(imgs), emb, flip=mode, cache_dir=tmp_path)
        assert again.from_cache and again.flip == mode
        np.testing.assert_array_equal(again.features, e.features)


def _demo(tmp_path, **kw):
    return runner.evaluate_model(TinyNet(), "demo", num_workers=0, progress=False, cache_dir=tmp_path, **kw)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"flip": False}, "none"),  # --no-flip
        ({}, "sum"),  # the demo protocol's default
        ({"flip": False, "conventions": {"flip": "concat"}}, "concat"),  # -c flip=NAME wins over --no-flip
        ({"conventions": {"flip": None}}, "none"),  # the CLI reads `-c flip=none` as None
    ],
)
def test_the_flip_convention_used_is_the_one_recorded(tmp_path, kwargs, expected):
    ev = _demo(tmp_path, **kwargs)
    assert ev.record.extraction["flip"] == expected
    assert ev.result.conventions["flip"] == expected
    assert ev.record.to_dict()["result"]["conventions"]["flip"] == expected
    # the features are those of that convention, computed here without the runner
    ref = _run(ev.protocol.images, load_model(TinyNet()), flip=expected)
    np.testing.assert_allclose(ev.embeddings.features, ref.features, rtol=1e-5, atol=1e-5)
    assert ev.record.extraction["feature_size"] == (16 if expected == "concat" else 8)
    assert ev.record.model["embedding_size"] == 8


def test_an_unknown_flip_convention_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown flip convention 'twice'.*sum, concat, none"):
        _demo(tmp_path, conventions={"flip": "twice"})


def test_conventions_table_shows_each_flip_convention_on_its_own_features(tmp_path):
    prep = runner.prepare(TinyNet(), "demo", num_workers=0, progress=False, cache_dir=tmp_path)
    emb = prep.embeddings
    assert not [r for r in runner.conventions_rows(prep.protocol, emb.features, emb.norms) if r["group"] == "flip"]
    rows = runner.conventions_rows(prep.protocol, emb.features, emb.norms, prepared=prep)
    flip_rows = [r for r in rows if r["group"] == "flip"]
    assert {r["convention"] for r in flip_rows} == {"sum", "concat", "none"}
    assert {r["convention"] for r in flip_rows if r["default"]} == {"sum"}
    for mode in ("sum", "concat", "none"):
        ref = _run(prep.protocol.images, load_model(TinyNet()), flip=mode)
        expected = prep.protocol.evaluate(ref.features, ref.norms, conventions={"flip": mode}).metrics
        got = {r["metric"]: r["value"] for r in flip_rows if r["convention"] == mode}
        assert got == pytest.approx(expected, nan_ok=True, rel=1e-5)


# -- non-finite rows ----------------------------------------------------------------------------------------------
def test_a_non_finite_cached_row_is_recomputed_not_skipped(tmp_path):
    imgs = random_crops(6, seed=13)
    emb = tiny_embedder()
    first = _run(ArraySource(imgs), emb, flip=False, batch_size=4, cache_dir=tmp_path)
    (path,) = (tmp_path / "embeddings").glob("*.h5")
    with h5py.File(path, "a") as f:
        assert f["done"][2]
        f["features"][2] = np.nan  # a damaged row still marked complete
    with pytest.warns(UserWarning, match="not finite"):
        second = _run(ArraySource(imgs), emb, flip=False, batch_size=4, cache_dir=tmp_path)
    assert second.n_skipped == 0 and second.timings["computed"] == 1
    np.testing.assert_allclose(second.features, first.features, rtol=1e-5, atol=1e-6)  # row 2 alone: other batch
    assert _run(ArraySource(imgs), emb, flip=False, batch_size=4, cache_dir=tmp_path).from_cache


class NaNOnDark(TinyNet):
    """NaN features for all-dark crops: a model that fails on some inputs only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x).clone()
        out[x.flatten(1).amax(dim=1) < (10 - 127.5) / 127.5] = float("nan")
        return out


def test_non_finite_model_rows_are_an_error_or_honestly_skipped(tmp_path):
    imgs = random_crops(6, seed=14)
    imgs[[1, 4]] = 0
    emb = load_model(NaNOnDark(), name="nan-on-dark")
    with pytest.raises(NonFiniteOutputError, match=r"nan-on-dark.*batch 0"):
        _run(ArraySource(imgs), emb, batch_size=4)
    out = _run(ArraySource(imgs), emb, batch_size=4, skip_bad_images=True, cache_dir=tmp_path)
    assert out.n_skipped == 2 and [s[0] for s in out.skipped] == [1, 4]
    assert all("nan-on-dark" in s[2] for s in out.skipped)
    assert np.isnan(out.features[[1, 4]]).all()
    good = [0, 2, 3, 5]
    expected = direct(emb.module, imgs[good]) + direct(emb.module, imgs[good][:, :, ::-1].copy())
    np.testing.assert_allclose(out.features[good], expected, rtol=1e-4, atol=1e-4)
    again = _run(ArraySource(imgs), emb, batch_size=4, skip_bad_images=True, cache_dir=tmp_path)
    assert again.timings["computed"] == 2 and again.n_skipped == 2  # skipped rows were not cached


class Widening(ChangesFrom):
    """One more output feature from the ``start``-th call on (the load-time probe is call 1)."""

    def change(self, out: torch.Tensor) -> torch.Tensor:
        return torch.cat([out, out[:, :1]], dim=1)


def test_an_output_width_change_names_the_model_and_the_batch():
    emb = load_model(Widening(start=3), name="widening")
    with pytest.raises(ModelOutputError, match=r"widening.*9 features.*8 when.*batch 1 \(images 2\.\.3"):
        _run(ArraySource(random_crops(6)), emb, batch_size=2, flip=False)


# -- batch size and device ----------------------------------------------------------------------------------------
class BatchSizes(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return super().forward(x)


def test_default_batch_size_follows_the_device():
    assert default_batch_size("cpu") == 32 and default_batch_size("cuda:1") == 128
    net = BatchSizes()
    emb = load_model(net)
    net.sizes.clear()
    out = _run(ArraySource(random_crops(40, seed=15)), emb, flip=False)
    assert out.batch_size == 32 and net.sizes == [32, 8]


def test_onnx_model_without_a_cuda_provider_records_the_cpu():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider: no fallback to observe")
    with pytest.warns(UserWarning, match="runs it on CPU"):
        emb = load_model("sface", device="cuda")
    assert emb.device.type == "cpu" and emb.requested_device.type == "cuda"
    out = _run(ArraySource(random_crops(2, seed=16)), emb, device="cuda", flip=False)
    assert out.device == "cpu"
    assert runner._requested(emb) == {"device_requested": "cuda"}
    assert runner._requested(tiny_embedder()) == {}
