"""``frbench evaluate --out``: checked before extraction; a failed write still prints the table and keeps the work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import fr_bench.cli as cli
import fr_bench.runner as runner
from fr_bench.cli import main


@pytest.fixture
def no_extraction(monkeypatch):
    """Fails the test if the evaluation starts (the --out check must come first)."""
    calls = []
    monkeypatch.setattr(runner, "evaluate_model", lambda *a, **k: calls.append(a) or pytest.fail("evaluation ran"))
    return calls


def _evaluate(out, *extra: str):
    return CliRunner().invoke(main, ["evaluate", "-m", "sface", "-p", "demo", "--out", str(out), "-q", *extra])


def _one_line_error(res) -> str:
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def test_out_is_a_file(tmp_path, no_extraction):
    target = tmp_path / "results.json"
    target.write_text("{}")
    line = _one_line_error(_evaluate(target))
    assert str(target) in line and "is a file" in line
    assert not no_extraction and target.read_text() == "{}"


def test_out_below_a_file(tmp_path, no_extraction):
    (tmp_path / "f").write_text("")
    line = _one_line_error(_evaluate(tmp_path / "f" / "sub" / "deeper"))
    assert "cannot write there" in line and not no_extraction


def test_out_check_creates_nothing(tmp_path):
    """A run that fails after the check (here: an unknown model) leaves no empty --out folder behind."""
    out = tmp_path / "new" / "results"
    _one_line_error(CliRunner().invoke(main, ["evaluate", "-m", str(tmp_path / "nope.onnx"), "-p", "demo",
                                              "--out", str(out), "-q"]))
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_read_only_folder(tmp_path, no_extraction):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = _one_line_error(_evaluate(ro))
    finally:
        ro.chmod(0o755)
    assert "cannot write there" in line and not no_extraction


def test_out_on_a_read_only_file_system(no_extraction):
    """/sys is read-only even for root (a real read-only location, whoever runs the tests)."""
    sys_dir = Path("/sys")
    try:
        (sys_dir / ".frbench-probe").touch()
    except OSError:
        pass
    else:  # pragma: no cover
        pytest.skip("/sys is writable here")
    line = _one_line_error(_evaluate(sys_dir))
    assert "--out /sys: cannot write there" in line and not no_extraction


def test_failed_write_prints_the_table_and_keeps_the_record(tmp_path, monkeypatch):
    def refuse(out_dir, record):
        raise PermissionError(13, "Permission denied", str(out_dir))

    monkeypatch.setattr(cli, "write_record", refuse)
    cache = tmp_path / "cache"
    res = _evaluate(tmp_path / "out", "--cache-dir", str(cache))
    line = _one_line_error(res)
    assert "accuracy (%)" in res.output and "rank1 (%)" in res.output  # the table came first
    kept = cache / "unsaved_results" / "sface" / "demo.json"
    assert f"kept in {kept}" in line
    record = json.loads(kept.read_text())
    assert record["result"]["metrics"]["rank1"] == 1.0  # SFace on the demo: perfect (shared/README.md)
    scores = record["scores_file"]
    assert scores and f"scores are in {scores}" in line and Path(scores).is_file()
