"""The ``frbench`` command line end to end, on the shipped demo faces and the shipped SFace model (real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fr_bench.cli import main
from fr_bench.protocols import list_protocols


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One real evaluation of SFace on the demo, shared by the tests below (it takes a few seconds on CPU)."""
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    runner = CliRunner()
    args = ["evaluate", "-m", "sface", "-p", "demo", "--out", str(out), "--cache-dir", str(cache), "-q", "--json"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, args)
    assert second.exit_code == 0, second.output
    return out, cache, json.loads(first.output), json.loads(second.output)


def test_help_teaches():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for command in ("evaluate", "protocols", "conventions", "compare", "leaderboard", "plot"):
        assert command in res.output
    res = CliRunner().invoke(main, ["evaluate", "--help"])
    assert "frbench evaluate --model sface --protocol demo" in res.output


def test_protocols_lists_every_spec():
    res = CliRunner().invoke(main, ["protocols"])
    assert res.exit_code == 0, res.output
    for name in list_protocols():
        assert name in res.output
    for name in ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "ijbc", "ijbb", "megaface", "kface", "demo"):
        assert name in list_protocols()


def test_evaluate_demo_real_faces(demo_run):
    out, _cache, record, _ = demo_run
    metrics = record["result"]["metrics"]
    # SFace separates the 5 people's 55 aligned faces perfectly (measured independently, shared/README.md).
    assert metrics["rank1"] == 1.0
    assert metrics["auc"] == 1.0
    assert metrics["eer"] == 0.0
    dist = record["result"]["details"]["distribution"]
    assert dist["n_genuine"] == 275 and dist["n_impostor"] == 1210
    assert dist["genuine_min"] > dist["impostor_max"] if "genuine_min" in dist else True
    assert record["model"]["format"] == "onnx"
    assert record["model"]["preprocessing"]["channel_order"] == "RGB"
    assert record["extraction"]["images"] == 55
    assert record["result"]["conventions"]["accuracy"] == "kfold-grid"
    assert (out / "sface" / "demo.json").is_file()
    assert record["protocol"]["data"]["combined"]


def test_second_run_is_served_from_cache(demo_run):
    _out, _cache, first, second = demo_run
    assert first["extraction"]["from_cache"] is False
    assert second["extraction"]["from_cache"] is True
    assert first["result"]["metrics"] == second["result"]["metrics"]


def test_scores_file_separates_genuine_and_impostor(demo_run):
    from fr_bench.results import read_scores

    _out, _cache, record, _ = demo_run
    pairs = read_scores(record["scores_file"])[0].pairs
    scores, labels = pairs.scores, pairs.labels
    assert labels.sum() == 275 and (~labels).sum() == 1210
    assert scores[labels].min() > scores[~labels].max()
    assert 0.5 < scores[labels].min() and scores[~labels].max() < 0.4


def test_leaderboard_and_plots(demo_run, tmp_path):
    out, *_ = demo_run
    runner = CliRunner()
    for fmt in ("md", "csv", "latex", "html"):
        res = runner.invoke(main, ["leaderboard", str(out), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert "sface" in res.output
    for kind in ("roc", "det", "dist"):
        target = tmp_path / f"{kind}.png"
        res = runner.invoke(main, ["plot", kind, "-p", "demo", str(out), "-o", str(target)])
        assert res.exit_code == 0, res.output
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conventions_table_reuses_the_cache(demo_run):
    _out, cache, *_ = demo_run
    res = CliRunner().invoke(main, ["conventions", "-m", "sface", "-p", "demo", "--cache-dir", str(cache), "-q"])
    assert res.exit_code == 0, res.output
    for conv in ("kfold-grid", "kfold-exact", "kfold-youden", "kfold-angular", "best-threshold", "strict", "nearest",
                 "interpolated"):
        assert conv in res.output
    assert "optimistic" in res.output


def test_bad_option_is_a_clear_error():
    res = CliRunner().invoke(main, ["evaluate", "-m", "sface", "-p", "demo", "-o", "novalue", "-q"])
    assert res.exit_code != 0
    assert "KEY=VALUE" in res.output


def test_unknown_protocol_names_the_known_ones():
    res = CliRunner().invoke(main, ["evaluate", "-m", "sface", "-p", "nosuch", "-q"])
    assert res.exit_code != 0
    assert "lfw" in str(res.exception) or "lfw" in res.output


def test_probe_embeddings_are_reproducible(demo_run):
    out, cache, record, _ = demo_run
    assert np.isfinite(record["result"]["metrics"]["xnorm"])


def test_torchrun_two_ranks_match_single_process(demo_run, tmp_path):
    """``torchrun --nproc_per_node 2 -m fr_bench evaluate``: ranks share the images, rank 0 writes the same numbers."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if not torchrun:
        pytest.skip("torchrun is not on PATH")
    _out, _cache, single, _ = demo_run
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "fr_bench", "evaluate", "-m", "sface", "-p", "demo",
         "--out", str(tmp_path), "--no-cache", "-q", "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout[proc.stdout.index("{"):])
    for key, value in single["result"]["metrics"].items():
        assert record["result"]["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert (tmp_path / "sface" / "demo.json").is_file()


def test_protocols_survey_finds_a_pack_in_a_subfolder(tmp_path):
    from writers import tiny_face, write_bin

    faces = [tiny_face(i) for i in range(4)]
    (tmp_path / "faces_emore").mkdir()
    write_bin(tmp_path / "faces_emore" / "lfw.bin", [faces[i % 4] for i in range(12000)],
              np.tile(np.repeat([True, False], 300), 10))
    write_bin(tmp_path / "agedb_30.bin", [faces[i % 4] for i in range(10)], [True] * 5)  # wrong count
    res = CliRunner().invoke(main, ["protocols", "--root", str(tmp_path / "faces_emore")])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("lfw "))
    assert "found in" in line and "12000 images" in line
    res = CliRunner().invoke(main, ["protocols", "--root", str(tmp_path)])
    line = next(x for x in res.output.splitlines() if x.startswith("agedb_30 "))
    assert "not found" in line and "6000" in line  # the count error says what was expected


def test_printed_table_shows_percent_intervals_and_operating_points(demo_run, tmp_path):
    _out, cache, record, _ = demo_run
    res = CliRunner().invoke(main, ["evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path), "--cache-dir",
                                    str(cache), "-q", "--ci", "--n-boot", "50"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "realised FAR" in lines[1] and "95% CI" in lines[1]
    acc = next(line for line in lines if line.strip().startswith("accuracy (%)"))
    assert f"{100 * record['result']['metrics']['accuracy']:.2f}" in acc and "by pair" in acc
    tar = next(line for line in lines if line.strip().startswith("tar@far=1e-3"))
    op = record["result"]["operating_points"]["tar@far=1e-3"]
    assert f"{op['threshold']:.4f}" in tar
    assert "from the cache" in res.output
