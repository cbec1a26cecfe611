"""The one resize of the input contract: against a hand-worked filter and Pillow, in evaluation and training alike,
and part of the extraction cache's identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from embed_fixtures import ArraySource, random_crops
from PIL import Image, ImageFilter
from torch import nn

from fr_bench.extract import extract
from fr_bench.models import Preprocessing, load_model, to_model_input
from fr_bench.models.preprocess import RESIZE_METHOD, resize_images, resize_uint8
from fr_bench.train.data import make_transform


def _smooth(seed: int, size: int) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.array(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)))  # resampling-friendly


def test_halving_is_the_antialiased_triangle_filter_by_hand():
    # bilinear with antialiasing at scale 2 = the triangle filter widened to support 2: output i takes input pixels
    # 2i-1, 2i, 2i+1, 2i+2 at distances 1.5, 0.5, 0.5, 1.5 (input pixels) -> weights 1 - d/2 = 1/4, 3/4, 3/4, 1/4,
    # normalised: (1, 3, 3, 1) / 8, separable in rows and columns (interior pixels; edges renormalise)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 16, 16))
    k = np.array([1.0, 3.0, 3.0, 1.0]) / 8
    rows = np.stack([x[..., 2 * i - 1: 2 * i + 3, :].transpose(0, 1, 3, 2) @ k for i in range(1, 7)], axis=2)
    want = np.stack([rows[..., 2 * j - 1: 2 * j + 3] @ k for j in range(1, 7)], axis=3)
    got = resize_images(torch.from_numpy(x).float(), (8, 8)).numpy()
    np.testing.assert_allclose(got[:, :, 1:7, 1:7], want, atol=1e-3)


@pytest.mark.parametrize("size", [(64, 64), (56, 56), (40, 48), (128, 128)])
def test_resize_matches_pillow_bilinear(size):
    # Pillow's BILINEAR widens its filter when reducing, as antialias=True does; it rounds to uint8 in fixed
    # point, so the float result is within 1 grey level of it (2 allowed: Pillow's own rounding), 0.6 on average
    smooth = _smooth(6, 112)
    ours = resize_images(torch.from_numpy(smooth).permute(2, 0, 1)[None], size)[0].permute(1, 2, 0).numpy()
    ref = np.asarray(Image.fromarray(smooth).resize(size[::-1], Image.BILINEAR), dtype=float)
    assert ours.shape == (*size, 3)
    assert np.abs(ours - ref).max() <= 2 and np.abs(ours - ref).mean() < 0.6
    rounded = resize_uint8(torch.from_numpy(smooth)[None], size)[0].numpy()
    np.testing.assert_array_equal(rounded, np.clip(np.round(ours), 0, 255).astype(np.uint8))
    same = torch.from_numpy(smooth)[None]
    assert resize_uint8(same, (112, 112)) is same  # no resize at the stored size


def _independent(crops: np.ndarray, size, mean, std, bgr=False) -> np.ndarray:
    """Resize (torch's interpolate called here directly), channel swap, then (x - mean) / std, in float64."""
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.double().numpy()
    if bgr:
        x = x[:, ::-1]
    mean, std = (np.broadcast_to(np.asarray(v, float), (3,)).reshape(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std


def test_evaluation_and_training_resize_crops_alike():
    crops = random_crops(3, seed=2)
    prep = Preprocessing(input_size=(64, 64), channel_order="BGR", mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    want = _independent(crops, (64, 64), prep.mean, prep.std, bgr=True)
    evaluation = to_model_input(torch.from_numpy(crops), prep, channels_last=False).numpy()
    training = make_transform(prep, train=False, flip=False)(crops).numpy()
    np.testing.assert_allclose(evaluation, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(training, evaluation)
    assert prep.to_dict()["resize"] == RESIZE_METHOD == prep.contract_key()["resize"]
    with pytest.raises(ValueError, match="resize must be one of"):
        Preprocessing(resize="nearest")
    assert Preprocessing.from_dict({"input_size": 64}).resize == RESIZE_METHOD  # contracts saved before the field


class PoolNet(nn.Module):
    """Any input size: an adaptive 4x4 average pool then a linear map."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(48, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def test_extraction_resizes_to_the_contract_and_the_cache_identity_follows_it(tmp_path):
    crops = random_crops(4, seed=5)
    net = PoolNet()
    runs = {}
    for size in (112, 64):
        emb = load_model(net, name="pool", input_size=size)
        runs[size] = extract(ArraySource(crops), emb, flip="none", num_workers=0, progress=False, cache_dir=tmp_path)
        assert runs[size].preprocessing["input_size"] == [size, size]
        assert runs[size].preprocessing["resize"] == RESIZE_METHOD
    assert runs[112].fingerprint != runs[64].fingerprint
    with torch.no_grad():
        want = net(torch.from_numpy(_independent(crops, (64, 64), 127.5, 127.5)).float()).numpy()
    np.testing.assert_allclose(runs[64].features, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(runs[64].features, runs[112].features, atol=1e-3)
