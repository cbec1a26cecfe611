"""Bad input through the ``frbench`` command line: ONE clear error line, a non-zero exit, never a traceback.

Each case runs the real command end to end (click's runner, in process); the root causes are fixed where they
arise (models, text files, score files), this checks what the user sees.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import pytest
from click.testing import CliRunner

import fr_bench
from fr_bench.cli import _USER_ERRORS, main


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(res) -> str:
    """The single ``Error:`` line of a failed command (asserting no traceback, non-zero exit)."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}"  # click printed it, no traceback
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a module ``name`` into an importable folder (for ``-m module:function`` specs)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()

    return write


def test_model_function_raising_type_error(user_module, tmp_path):
    user_module("badfactory", "def make(width):\n    raise TypeError('width must be an int')\n")
    line = one_error_line(_invoke("evaluate", "-m", "badfactory:make", "-p", "demo", "--out", str(tmp_path / "o"),
                                  "-q", "--no-cache", "--model-option", "width=3"))
    assert "badfactory:make" in line and "TypeError" in line and "width must be an int" in line


def test_model_function_called_with_wrong_arguments(user_module, tmp_path):
    user_module("twoargs", "def make(a, b):\n    raise AssertionError('not reached')\n")
    line = one_error_line(_invoke("evaluate", "-m", "twoargs:make", "-p", "demo", "--out", str(tmp_path / "o"),
                                  "-q", "--no-cache"))
    assert "twoargs:make" in line


FLAKY = """
import torch
from torch import nn


class Flaky(nn.Module):
    '''Output width alternates between calls: 8, 6, 8, ...'''

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.calls += 1
        width = 8 if self.calls % 2 else 6
        return x.flatten(1)[:, :width].float() * self.scale


def make():
    return Flaky()
"""


def test_model_output_width_changing_between_batches(user_module, tmp_path):
    user_module("flakymodel", FLAKY)
    line = one_error_line(_invoke("evaluate", "-m", "flakymodel:make", "-p", "demo", "--out", str(tmp_path / "o"),
                                  "-q", "--no-cache", "--no-flip", "--batch-size", "8", "--workers", "0"))
    assert "flakymodel:make" in line and "width" in line
    assert "batch" in line  # which batch: the issue asks for the model and the batch


def test_model_option_mean_not_a_number(tmp_path):
    line = one_error_line(_invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path / "o"), "-q",
                                  "--model-option", "mean=abc"))
    assert "mean" in line and "abc" in line


def test_unknown_model_option_lists_the_valid_keys(tmp_path):
    line = one_error_line(_invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path / "o"), "-q",
                                  "--model-option", "colour=BGR"))
    assert "colour" in line and "channel_order" in line


def test_unknown_protocol_option_lists_the_valid_keys(tmp_path):
    line = one_error_line(_invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path / "o"), "-q",
                                  "-o", "no_such_option=1"))
    assert "no_such_option" in line


def test_non_utf8_pairs_file(tmp_path):
    root = tmp_path / "lfw_root"
    (root / "lfw" / "Abel_Pacheco").mkdir(parents=True)
    (root / "pairs.txt").write_bytes(b"1\t1\nAbel_Pacheco\t1\t2\nAb\xe9l\t1\tAbel_Pacheco\t3\n")
    line = one_error_line(_invoke("evaluate", "-m", "sface", "-p", "lfw", "-r", str(root), "--out",
                                  str(tmp_path / "o"), "-q", "-o", "aligned=true"))
    assert "pairs.txt" in line and ("UTF-8" in line or "utf-8" in line)


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    """One real SFace run on the demo: its result file and scores file."""
    out = tmp_path_factory.mktemp("results")
    res = _invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(out), "-q", "--cache-dir",
                  str(tmp_path_factory.mktemp("cache")))
    assert res.exit_code == 0, res.output
    return out / "sface" / "demo.json"


def test_compare_with_a_corrupt_scores_file(demo_result, tmp_path):
    record = json.loads(demo_result.read_text())
    corrupt = tmp_path / "corrupt_scores.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # an HDF5 signature, then nothing
    record["scores_file"] = str(corrupt)
    record["model"]["name"] = "other"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record))
    line = one_error_line(_invoke("compare", str(demo_result), str(other), "--n-boot", "50"))
    assert "corrupt_scores.h5" in line


def test_compare_with_a_result_that_is_not_json(demo_result, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    line = one_error_line(_invoke("compare", str(demo_result), str(bad)))
    assert "bad.json" in line


def test_missing_model_file(tmp_path):
    line = one_error_line(_invoke("evaluate", "-m", str(tmp_path / "missing.onnx"), "-p", "demo", "--out",
                                  str(tmp_path / "o"), "-q"))
    assert "missing.onnx" in line


def _project_error_classes() -> list[type]:
    classes = {}
    for info in pkgutil.walk_packages(fr_bench.__path__, "fr_bench."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # an optional dependency (or another helper's module in progress): not this test's subject
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__.startswith("fr_bench") and not issubclass(obj, Warning):
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [classes[k] for k in sorted(classes)]


def test_every_project_error_type_is_shown_as_one_line():
    classes = _project_error_classes()
    assert len(classes) >= 8
    escaping = [c.__qualname__ for c in classes if not issubclass(c, _USER_ERRORS)]
    assert not escaping, f"would print a traceback: {escaping}"


def test_missing_optional_dependency_names_its_extra(monkeypatch, tmp_path):
    import fr_bench.runner as runner

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(runner, "evaluate_model", missing)
    line = one_error_line(_invoke("evaluate", "-m", "x.onnx", "-p", "demo", "--out", str(tmp_path / "o"), "-q"))
    assert "onnxruntime" in line and "fr-bench[onnx]" in line


def test_multi_line_messages_are_folded(monkeypatch, tmp_path):
    import fr_bench.runner as runner

    def fails(*args, **kwargs):
        raise ValueError("first line\n  second line\n")

    monkeypatch.setattr(runner, "evaluate_model", fails)
    line = one_error_line(_invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path / "o"), "-q"))
    assert line == "Error: ValueError: first line second line"


def test_debug_keeps_the_traceback(monkeypatch, tmp_path):
    import fr_bench.runner as runner

    monkeypatch.setenv("FRBENCH_DEBUG", "1")
    monkeypatch.setattr(runner, "evaluate_model", lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    res = _invoke("evaluate", "-m", "sface", "-p", "demo", "--out", str(tmp_path / "o"), "-q")
    assert isinstance(res.exception, ValueError)

