"""``frbench train``: end to end through click, the checkpoint through ``frbench evaluate``, bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fr_bench.cli import main
from train_fixtures import TINY, one_thread  # noqa: F401  (one_thread: a fixture)

SYNTH = "data.options={num_classes = 4, images_per_class = 4, image_size = 32}"


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _tree(root, classes=2, per_class=4, size=32):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"id{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"id{c}" / f"{i}.png")
    return root


def test_train_then_evaluate_the_checkpoint_with_no_extra_flag(tmp_path):
    # trained at 64x64: evaluated on the demo's 112x112 crops resized to 64x64, as its contract records
    out = tmp_path / "run"
    at64 = [*TINY, "model.input_size=64", SYNTH.replace("image_size = 32", "image_size = 64")]  # the last wins
    res = _run("train", "arcface", "--data", "synthetic", "--out", out, "--max-steps", 2, "-q", *at64)
    assert res.exit_code == 0, res.output
    assert "trained arcface: 2 steps" in res.output
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "log.csv", "training_state.pt"}
    ev = _run("evaluate", "-m", out / "checkpoint.pt", "-p", "demo", "--out", tmp_path / "results", "--no-cache",
              "-q", "--json")
    assert ev.exit_code == 0, ev.output
    record = json.loads(ev.output[ev.output.index("{"):])
    assert record["model"]["format"] == "fr_bench-checkpoint"
    assert record["model"]["preprocessing"]["input_size"] == [64, 64]
    assert record["model"]["preprocessing"]["resize"] == "bilinear-antialias"
    assert record["model"]["embedding_size"] == 16
    assert 0.0 <= record["result"]["metrics"]["accuracy"] <= 1.0


def test_resume_flag_continues_to_the_same_step(tmp_path):
    out = tmp_path / "run"
    assert _run("train", "cosface", "--data", "synthetic", "--out", out, "--max-steps", 2, "-q", *TINY,
                SYNTH).exit_code == 0
    again = _run("train", "cosface", "--data", "synthetic", "--out", out, "--max-steps", 2, "-q", *TINY, SYNTH)
    assert again.exit_code != 0 and "--resume" in again.output
    more = _run("train", "cosface", "--data", "synthetic", "--out", out, "--max-steps", 2, "--resume", "-q", *TINY,
                SYNTH)
    assert more.exit_code == 0 and "2 steps" in more.output


def _one_error_line(res):
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    return lines[0]


def test_unknown_recipe_key_names_file_and_key(tmp_path):
    line = _one_error_line(_run("train", "arcface", "--data", "synthetic", "--out", tmp_path / "o", "optim.lrr=1"))
    assert "arcface.toml" in line and "optim.lrr" in line
    assert not (tmp_path / "o").exists()


def test_empty_class_folder_names_the_folder(tmp_path):
    root = _tree(tmp_path / "data")
    (root / "id_empty").mkdir()
    line = _one_error_line(_run("train", "softmax", "--data", root, "--out", tmp_path / "o", *TINY))
    assert "id_empty" in line
    assert not (tmp_path / "o").exists()


def test_unreadable_image_names_the_file_and_writes_nothing(tmp_path):
    root = _tree(tmp_path / "data")
    (root / "id1" / "2.png").write_bytes(b"not an image")
    line = _one_error_line(_run("train", "softmax", "--data", root, "--out", tmp_path / "o", "--max-steps", 3,
                                "-q", *TINY))
    assert "2.png" in line
    assert not (tmp_path / "o").exists()


def test_recordio_index_past_the_end_names_the_file(tmp_path):
    from writers_recordio import write_pack

    rng = np.random.default_rng(0)
    pack = write_pack(tmp_path / "pack", [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(8)],
                      [0, 0, 0, 0, 1, 1, 1, 1])
    idx = (pack / "train.idx").read_text().splitlines()
    key, _ = idx[3].split("\t")
    idx[3] = f"{key}\t{(pack / 'train.rec').stat().st_size + 64}"
    (pack / "train.idx").write_text("\n".join(idx) + "\n")
    line = _one_error_line(_run("train", "softmax", "--data", pack, "--out", tmp_path / "o", *TINY))
    assert "train.idx" in line and "past the end" in line
    assert not (tmp_path / "o").exists()


def test_help_teaches_with_examples():
    for command in ("train", "study"):
        res = _run(command, "--help")
        assert res.exit_code == 0 and "Examples:" in res.output and "frbench " + command in res.output
