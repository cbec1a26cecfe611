"""Whole-pipeline behaviour through the CLI: corrupt images, a second model, the paired comparison."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from conftest import REPO
from fr_bench.cli import main

DEMO = REPO / "fr_bench" / "protocols" / "demo_data"


@pytest.fixture()
def face_tree(tmp_path):
    """A `folder` benchmark of real aligned faces (3 people x 4 images), plus one corrupt JPEG."""
    root = tmp_path / "faces"
    people = sorted(p for p in DEMO.iterdir() if p.is_dir())[:3]
    for person in people:
        (root / person.name).mkdir(parents=True)
        for img in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy(img, root / person.name / img.name)
    bad = root / people[0].name / f"{people[0].name}_0099.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return root, bad


def test_corrupt_image_is_named_and_can_be_skipped(face_tree, tmp_path):
    root, bad = face_tree
    runner = CliRunner()
    args = ["evaluate", "-m", "sface", "-p", "folder", "-r", str(root), "--out", str(tmp_path / "res"), "-q",
            "--no-cache", "--workers", "0"]
    res = runner.invoke(main, args)
    assert res.exit_code != 0
    assert bad.name in str(res.exception) + res.output

    res = runner.invoke(main, args + ["--skip-bad-images", "--json"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.output)
    assert record["extraction"]["n_skipped"] == 1
    assert any(bad.name in " ".join(item) for item in record["extraction"]["skipped"])
    counts = record["result"]["details"]["counts"]
    assert counts["n_pairs_scored"] < counts["n_pairs_total"]
    assert any("could not be embedded" in flag for flag in record["result"]["flags"])
    # the pairs that remain are all of real, correctly embedded faces: SFace separates them perfectly
    assert record["result"]["metrics"]["auc"] == 1.0


class _Pixels(torch.nn.Module):
    """A deliberately poor face model: average-pooled raw pixels (8x8x3 = 192-d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)


def test_compare_two_models_on_the_demo(tmp_path):
    scripted = tmp_path / "pixels.pt"
    torch.jit.script(_Pixels()).save(str(scripted))
    out, cache = tmp_path / "res", tmp_path / "cache"
    runner = CliRunner()
    for model, name in (("sface", "sface"), (str(scripted), "pixels")):
        res = runner.invoke(main, ["evaluate", "-m", model, "--name", name, "-p", "demo", "--out", str(out),
                                   "--cache-dir", str(cache), "-q", "--workers", "0"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["compare", str(out / "pixels" / "demo.json"), str(out / "sface" / "demo.json"),
                               "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "McNemar" in text and "sface" in text and "pixels" in text
    # The pixel model is far worse on the same pairs: the accuracy difference is positive and significant.
    acc_line = next(line for line in text.splitlines() if line.startswith("| accuracy"))
    assert "+" in acc_line

    res = runner.invoke(main, ["leaderboard", str(out)])
    assert res.exit_code == 0 and "pixels" in res.output and "sface" in res.output


def test_compare_refuses_different_protocols(tmp_path):
    from fr_bench.comparison import ComparisonError, compare_records
    from fr_bench.protocols import ProtocolResult
    from fr_bench.results import StoredResult

    a = StoredResult(model={"name": "a"}, protocol={"name": "lfw"}, result=ProtocolResult("lfw", {}))
    b = StoredResult(model={"name": "b"}, protocol={"name": "demo"}, result=ProtocolResult("demo", {}))
    with pytest.raises(ComparisonError, match="different protocols"):
        compare_records(a, b)


def test_compare_refuses_different_protocol_options():
    from fr_bench.comparison import ComparisonError, compare_records
    from fr_bench.protocols import ProtocolResult
    from fr_bench.results import StoredResult

    data = {"combined": "abc"}
    a = StoredResult(model={"name": "a"}, protocol={"name": "folder", "options": {"seed": "0"}, "data": data},
                     result=ProtocolResult("folder", {}))
    b = StoredResult(model={"name": "b"}, protocol={"name": "folder", "options": {"seed": "1"}, "data": data},
                     result=ProtocolResult("folder", {}))
    with pytest.raises(ComparisonError, match="different protocol options"):
        compare_records(a, b)
