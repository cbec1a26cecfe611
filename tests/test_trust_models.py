"""Model options: every wrong key or value is a one-line error saying what is valid, for every model kind."""

from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner

from embed_fixtures import TinyNet
from fr_bench.cli import main
from fr_bench.models import ModelLoadError, create_backbone, load_model, save_checkpoint
from fr_bench.models.preprocess import Preprocessing

CONTRACT = "channel_order, mean, std, input_size, embedding_size, name"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """One small file of each kind: TorchScript, plain state dict (mobilefacenet, 16-d), fr_bench checkpoint."""
    folder = tmp_path_factory.mktemp("models")
    torch.jit.script(TinyNet()).save(str(folder / "tiny.pt"))
    torch.manual_seed(0)
    mbf = create_backbone("mobilefacenet", num_features=16)
    torch.save(mbf.state_dict(), folder / "mbf.pth")
    save_checkpoint(mbf, folder / "ckpt.pt", "mobilefacenet", {"num_features": 16}, Preprocessing())
    return folder


@pytest.fixture()
def my_models(tmp_path, monkeypatch):
    (tmp_path / "my_models_trust.py").write_text(textwrap.dedent("""
        from torch import nn

        def tiny(dim=8):
            return nn.Sequential(nn.Conv2d(3, 2, 8, stride=8), nn.Flatten(), nn.Linear(2 * 14 * 14, dim))

        def broken(dim=8):
            raise TypeError("tiny() lost its head")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize(
    ("kind", "constructor"),
    [("onnx", ""), ("torchscript", ""), ("state_dict", "blocks, num_features, scale (mobilefacenet constructor)"),
     ("checkpoint", "blocks, num_features, scale (mobilefacenet constructor)"), ("callable", "dim (arguments of tiny)"),
     ("module", "")],
)
def test_an_unknown_model_option_lists_the_valid_keys(kind, constructor, model_files, my_models):
    spec = {"onnx": "sface", "torchscript": str(model_files / "tiny.pt"), "state_dict": str(model_files / "mbf.pth"),
            "checkpoint": str(model_files / "ckpt.pt"), "callable": "my_models_trust:tiny", "module": TinyNet()}[kind]
    arch = "mobilefacenet" if kind == "state_dict" else None
    with pytest.raises(ModelLoadError) as info:
        load_model(spec, arch=arch, colour="BGR")
    message = str(info.value)
    assert "unknown model option 'colour'" in message and f"valid keys: {CONTRACT} (input contract)" in message
    assert constructor in message
    assert "\n" not in message


def test_known_constructor_options_still_work(model_files, my_models):
    assert load_model(str(model_files / "mbf.pth"), arch="mobilefacenet", num_features=16).embedding_size == 16
    assert load_model("my_models_trust:tiny", dim=5).embedding_size == 5


def test_a_callable_raising_type_error_is_named(my_models):
    with pytest.raises(ModelLoadError, match=r"'my_models_trust:broken'.*broken\(dim=4\) raised TypeError: tiny\(\) "
                                             r"lost its head"):
        load_model("my_models_trust:broken", dim=4)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"mean": "abc"}, r"mean must be one number or three \(one per channel\), got 'abc'"),
     ({"std": "1,2"}, r"std must be one number or three"),
     ({"input_size": "big"}, r"input_size must be one number or two \(height, width\), got 'big'"),
     ({"input_size": 64}, r"sface has a fixed 112x112 input .*input_size=64x64")],
)
def test_bad_contract_values_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        load_model("sface", **options)


def test_contract_values_given_as_text_are_read():
    prep = load_model(TinyNet(), mean="127.5,127.5,127.5", std="128").prep
    assert prep.mean == (127.5, 127.5, 127.5) and prep.std == (128.0, 128.0, 128.0)


@pytest.mark.parametrize(
    ("option", "message"),
    [("colour=BGR", "unknown model option 'colour'; valid keys: channel_order"),
     ("mean=abc", "mean must be one number or three"),
     ("input_size=64", "fixed 112x112 input"),
     ("device=cuda", "give it as --device")],
)
def test_cli_prints_model_option_errors_on_one_line(option, message, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "-m", "sface", "-p", "demo", "-q", "--workers", "0",
                                       "--model-option", option, "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
