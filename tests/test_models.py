"""fr_bench.models: every checkpoint format, written by the test itself, loads and computes what the net computes."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO, SHARED, shared_path
from fr_bench.models import (
    ModelLoadError,
    NonFiniteOutputError,
    create_backbone,
    list_archs,
    load_model,
    save_checkpoint,
)

SFACE_SHA = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"


class TinyNet(nn.Module):
    """A small conv net that treats the three channels differently (so a channel swap changes its output)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)
        self.fc = nn.Linear(4 * 28 * 28, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.conv(x), 1))


class NaNNet(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out * float("nan")


def crops(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8))


def manual_input(batch: torch.Tensor, mean, std, bgr: bool = False) -> torch.Tensor:
    """The input contract computed independently: float64 math in numpy, then float32."""
    x = batch.numpy().astype(np.float64)
    if bgr:
        x = x[..., ::-1]
    x = (x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32))


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that eval mode and the stored buffers matter."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def r18():
    """A full-size iresnet18 (512-d), randomly initialised with non-trivial BN statistics."""
    torch.manual_seed(0)
    return randomise_bn(create_backbone("iresnet18"))


@pytest.fixture(scope="module")
def r18_small():
    """iresnet18 with a 64-d head (``num_features=64``): same names, a quarter of the bytes to write."""
    torch.manual_seed(0)
    return randomise_bn(create_backbone("iresnet18", num_features=64))


# -- architectures ------------------------------------------------------------------------------------------------
def test_registry_lists_the_insightface_backbones():
    for name in ("iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200", "mobilefacenet"):
        assert name in list_archs()
    with pytest.raises(KeyError, match="unknown architecture"):
        create_backbone("resnet9000")


def test_iresnet_parameter_names_and_shapes_follow_arcface_torch():
    with torch.device("meta"):  # shapes only
        sd = create_backbone("iresnet50").state_dict()
    # stem, first block with its 1x1 downsample, head: names and shapes of arcface_torch's iresnet.py
    assert sd["conv1.weight"].shape == (64, 3, 3, 3)
    assert sd["prelu.weight"].shape == (64,)
    assert sd["layer1.0.bn1.weight"].shape == (64,)
    assert sd["layer1.0.conv2.weight"].shape == (64, 64, 3, 3)
    assert sd["layer1.0.downsample.0.weight"].shape == (64, 64, 1, 1)
    assert sd["layer2.0.downsample.1.running_var"].shape == (128,)
    assert sd["layer4.2.bn3.weight"].shape == (512,)
    assert sd["bn2.weight"].shape == (512,)
    assert sd["fc.weight"].shape == (512, 512 * 7 * 7)
    assert sd["features.running_mean"].shape == (512,)
    blocks = [len({k.split(".")[1] for k in sd if k.startswith(f"layer{s}.")}) for s in range(1, 5)]
    assert blocks == [3, 4, 14, 3]
    assert "layer1.1.downsample.0.weight" not in sd  # only the first block of a stage downsamples
    with torch.device("meta"):
        assert create_backbone("iresnet50")(torch.zeros(2, 3, 112, 112)).shape == (2, 512)
        r200 = create_backbone("iresnet200").state_dict()
    assert [len({k.split(".")[1] for k in r200 if k.startswith(f"layer{s}.")}) for s in range(1, 5)] == [6, 26, 60, 6]


def test_mobilefacenet_parameter_names_follow_arcface_torch():
    torch.manual_seed(0)
    net = create_backbone("mobilefacenet").eval()
    sd = net.state_dict()
    assert sd["layers.0.layers.0.weight"].shape == (128, 3, 3, 3)  # stem ConvBlock: conv, bn, prelu
    assert sd["layers.0.layers.2.weight"].shape == (128,)
    assert sd["layers.1.layers.0.weight"].shape == (128, 2, 3, 3)  # depthwise ConvBlock with groups=64
    assert sd["layers.2.layers.0.layers.0.weight"].shape == (128, 128, 1, 1)  # DepthWise expand
    assert sd["layers.3.layers.3.layers.2.layers.1.running_mean"].shape == (128,)  # Residual: 4 blocks
    assert sd["conv_sep.layers.0.weight"].shape == (512, 256, 1, 1)
    assert sd["features.layers.0.layers.0.weight"].shape == (512, 1, 7, 7)  # GDC depthwise 7x7
    assert sd["features.layers.2.weight"].shape == (512, 512)  # Linear, no bias
    assert "features.layers.2.bias" not in sd
    assert sd["features.layers.3.running_var"].shape == (512,)
    assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


# -- state dicts -----------------------------------------------------------------------------------------------------
def test_iresnet18_state_dict_round_trip(tmp_path, r18):
    path = tmp_path / "backbone.pth"
    torch.save(r18.state_dict(), path)
    emb = load_model(str(path), arch="iresnet18")
    assert emb.format == "state_dict" and emb.embedding_size == 512
    assert emb.preprocessing["channel_order"] == "RGB"
    assert emb.preprocessing["mean"] == [127.5] * 3 and emb.preprocessing["std"] == [127.5] * 3
    assert not emb.preprocessing["assumed"] and "arcface_torch" in emb.preprocessing["source"]
    batch = crops(2)
    with torch.no_grad():
        expected = r18(manual_input(batch, 127.5, 127.5))
    torch.testing.assert_close(emb(batch), expected, rtol=1e-4, atol=1e-4)


def test_module_prefix_is_stripped(tmp_path, r18_small):
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in r18_small.state_dict().items()}, path)
    emb = load_model(path, arch="iresnet18", num_features=64)
    assert any("module." in note for note in emb.notes) and emb.embedding_size == 64
    batch = crops(1)
    with torch.no_grad():
        expected = r18_small(manual_input(batch, 127.5, 127.5))
    torch.testing.assert_close(emb(batch), expected, rtol=1e-4, atol=1e-4)


def test_wrong_arch_gives_a_clear_error(tmp_path, r18_small):
    path = tmp_path / "r18.pth"
    torch.save(r18_small.state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path, arch="iresnet34", num_features=64)
    msg = str(info.value)
    with torch.device("meta"):
        want = create_backbone("iresnet34", num_features=64).state_dict()
    missing = [k for k in want if k not in r18_small.state_dict()]
    assert str(path) in msg and f"{len(missing)} missing" in msg and missing[0] in msg
    assert "look like iresnet18" in msg
    with pytest.raises(ModelLoadError, match="pass arch=NAME.*iresnet18"):
        load_model(path)


def test_training_checkpoint_and_pickled_module_are_refused_with_hints(tmp_path):
    net = TinyNet()
    full = tmp_path / "full.pth"
    torch.save({"state_dict": net.state_dict(), "epoch": 3, "lr": 0.1}, full)
    with pytest.raises(ModelLoadError, match="full training checkpoint.*'state_dict'"):
        load_model(full, arch="iresnet18")
    pickled = tmp_path / "pickled.pt"
    torch.save(net, pickled)
    with pytest.raises(ModelLoadError, match="pickled whole model"):
        load_model(pickled)


# -- TorchScript, own checkpoints, callables ------------------------------------------------------------------------
def test_torchscript_with_assumed_preprocessing(tmp_path):
    torch.manual_seed(1)
    net = TinyNet().eval()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    emb = load_model(path)
    assert emb.format == "torchscript" and emb.embedding_size == 8
    assert emb.preprocessing["assumed"] and "ASSUMED" in emb.preprocessing["source"]
    batch = crops(3)
    with torch.no_grad():
        torch.testing.assert_close(emb(batch), net(manual_input(batch, 127.5, 127.5)), rtol=1e-5, atol=1e-5)


def test_own_checkpoint_carries_arch_and_preprocessing(tmp_path, r18_small):
    r18 = r18_small
    prep = {"channel_order": "BGR", "mean": [100.0, 110.0, 120.0], "std": [50.0, 60.0, 70.0], "input_size": 112}
    path = save_checkpoint(r18, tmp_path / "ckpt" / "model.pt", "iresnet18", {"num_features": 64}, prep,
                           meta={"loss": "arcface"})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "fr_bench.checkpoint" and raw["version"] == 1 and raw["embedding_size"] == 64
    emb = load_model(str(path))
    assert emb.format == "fr_bench-checkpoint" and emb.preprocessing["source"] == "checkpoint"
    assert emb.channel_order == "BGR" and emb.preprocessing["mean"] == [100.0, 110.0, 120.0]
    batch = crops(2)
    with torch.no_grad():
        expected = r18(manual_input(batch, [100.0, 110.0, 120.0], [50.0, 60.0, 70.0], bgr=True))
    torch.testing.assert_close(emb(batch), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelLoadError, match="checkpoint is arch 'iresnet18'"):
        load_model(path, arch="iresnet50")


def test_a_trained_run_is_named_after_its_folder(tmp_path, r18_small):
    """`frbench train` writes OUT/checkpoint.pt: two runs must not both be called "checkpoint" in results/."""
    runs = [save_checkpoint(r18_small, tmp_path / run / "checkpoint.pt", "iresnet18", {"num_features": 64})
            for run in ("arcface_r18", "cosface_r18")]
    assert [load_model(str(p)).name for p in runs] == ["arcface_r18", "cosface_r18"]
    other = save_checkpoint(r18_small, tmp_path / "x" / "best.pt", "iresnet18", {"num_features": 64})
    assert load_model(str(other)).name == "best"
    assert load_model(str(runs[0]), name="mine").name == "mine"


def test_module_function_spec_and_user_preprocessing(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def tiny(dim=8):
            torch.manual_seed(2)
            return nn.Sequential(nn.Conv2d(3, 2, 8, stride=8), nn.Flatten(), nn.Linear(2 * 14 * 14, dim))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    emb = load_model("my_models:tiny", dim=6)
    assert emb.format == "callable" and emb.embedding_size == 6 and emb.preprocessing["assumed"]
    bgr = load_model("my_models:tiny", dim=6, channel_order="BGR", mean=0, std=255)
    assert bgr.preprocessing["source"].startswith("user flag") and bgr.fingerprint != emb.fingerprint
    import my_models

    net = my_models.tiny(dim=6).eval()
    batch = crops(2)
    with torch.no_grad():
        torch.testing.assert_close(bgr(batch), net(manual_input(batch, 0, 255, bgr=True)), rtol=1e-5, atol=1e-5)
        # a source that already delivers BGR is not swapped again
        torch.testing.assert_close(bgr(batch.flip(3), color_space="BGR"), bgr(batch), rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelLoadError, match="cannot import"):
        load_model("my_models:nope")
    with pytest.raises(ModelLoadError, match="embedding_size=7 given but the model outputs 6"):
        load_model("my_models:tiny", dim=6, embedding_size=7)


def test_nan_output_names_the_model():
    emb = load_model(NaNNet(), name="nan-net")
    with pytest.raises(NonFiniteOutputError, match="nan-net"):
        emb(crops(2))


def test_fingerprint_follows_file_bytes_and_preprocessing(tmp_path):
    net = TinyNet()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    a = load_model(path)
    assert load_model(path).fingerprint == a.fingerprint
    assert load_model(path, mean=0.0).fingerprint != a.fingerprint
    with torch.no_grad():
        net.fc.bias.add_(1.0)
    torch.jit.script(net).save(str(path))
    assert load_model(path).fingerprint != a.fingerprint


def test_crops_of_another_size_are_resized_to_the_contract():
    emb = load_model(TinyNet())
    crops = torch.randint(0, 256, (2, 96, 96, 3), dtype=torch.uint8)
    x = torch.nn.functional.interpolate(crops.permute(0, 3, 1, 2).float(), size=(112, 112), mode="bilinear",
                                        antialias=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (emb.prep.mean, emb.prep.std))
    with torch.no_grad():
        torch.testing.assert_close(emb(crops), emb.module((x - mean) / std), rtol=1e-5, atol=1e-5)


# -- ONNX -------------------------------------------------------------------------------------------------------------
def test_onnx_export_round_trip(tmp_path):
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package (dev extra)")
    torch.manual_seed(3)
    net = TinyNet().eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    emb = load_model(path)
    assert emb.format == "onnx" and emb.embedding_size == 8 and emb.preprocessing["assumed"]
    batch = crops(5)
    with torch.no_grad():
        torch.testing.assert_close(emb(batch), net(manual_input(batch, 127.5, 127.5)), rtol=1e-4, atol=1e-4)


def _sface_file():
    local = REPO / "reference_models" / "sface" / "face_recognition_sface_2021dec.onnx"
    return local if local.exists() else shared_path("models", "sface", "face_recognition_sface_2021dec.onnx")


def test_reference_sface_ships_with_license_and_card():
    folder = REPO / "reference_models" / "sface"
    if not (folder / "face_recognition_sface_2021dec.onnx").exists():
        pytest.skip("reference_models/sface/*.onnx absent from this checkout")
    from fr_bench.models import file_sha256

    assert file_sha256(folder / "face_recognition_sface_2021dec.onnx") == SFACE_SHA
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert SFACE_SHA in (folder / "MODEL_CARD.md").read_text()


def test_sface_matches_onnxruntime_on_a_real_crop():
    ort = pytest.importorskip("onnxruntime")
    from PIL import Image

    path = _sface_file()
    crop_files = sorted((SHARED / "data" / "johns_aligned112").glob("*/*.jpg"))[:2]
    if not crop_files:
        pytest.skip("../shared/data/johns_aligned112 absent")
    imgs = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in crop_files])
    emb = load_model(str(path))  # recognised by its sha256 wherever it lives
    assert emb.name == "sface" and emb.embedding_size == 128
    assert emb.preprocessing["mean"] == [0.0] * 3 and emb.preprocessing["std"] == [1.0] * 3
    assert not emb.preprocessing["assumed"]
    ours = emb(torch.from_numpy(imgs)).numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for img, mine in zip(imgs, ours):
        x = img.astype(np.float32).transpose(2, 0, 1)[None]  # RGB, raw 0..255, NCHW
        ref = sess.run(None, {"data": x})[0][0]
        cos = float(mine @ ref / np.linalg.norm(mine) / np.linalg.norm(ref))
        assert cos > 0.9999
        assert np.linalg.norm(ref) > 1.0  # raw features, not normalised


def test_builtin_name_loads_sface():
    if not (REPO / "reference_models" / "sface" / "face_recognition_sface_2021dec.onnx").exists():
        pytest.skip("reference_models/sface/*.onnx absent from this checkout")
    emb = load_model("sface")
    assert emb.name == "sface" and emb.format == "onnx" and emb.embedding_size == 128
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model("no-such-model")


def test_in_memory_module_is_fingerprinted_by_its_weights_and_buffers(r18_small):
    a = load_model(r18_small)
    assert a.format == "callable" and a.embedding_size == 64 and a.preprocessing["assumed"]
    assert load_model(r18_small).fingerprint == a.fingerprint
    with torch.no_grad():
        r18_small.bn1.running_var.mul_(2.0)
    try:
        assert load_model(r18_small).fingerprint != a.fingerprint
    finally:
        with torch.no_grad():
            r18_small.bn1.running_var.div_(2.0)
