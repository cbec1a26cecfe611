"""The README's examples run as written and print what they say; its quick start is what CI runs."""

from __future__ import annotations

import re

import numpy as np
from conftest import REPO
from sklearn.metrics import roc_curve

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_python_blocks_run_and_their_numbers_check_out(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    ns: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), ns)
    printed = capsys.readouterr().out
    assert len(printed.splitlines()) >= 8  # every print ran

    # the metrics block: its ROC is scikit-learn's, as its comment says
    scores, labels = ns["scores"], ns["labels"]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(np.asarray(ns["far"])[-len(fpr) + 1:], fpr[1:], atol=1e-12)
    np.testing.assert_allclose(np.asarray(ns["tar"])[-len(tpr) + 1:], tpr[1:], atol=1e-12)
    # the strict operating point: counted by hand at its threshold, realised FAR not above the target
    point = ns["point"]
    genuine, impostor = scores[labels == 1], scores[labels == 0]
    assert point.far <= 1e-3
    assert point.far == np.count_nonzero(impostor >= point.threshold) / impostor.size
    assert point.tar == np.count_nonzero(genuine >= point.threshold) / genuine.size

    # the protocol block: SFace separates the demo's 5 people perfectly (measured independently, shared/README.md)
    result = ns["result"]
    assert result.metrics["rank1"] == 1.0 and result.metrics["accuracy"] >= 0.99
    assert result.conventions["accuracy"] == "kfold-exact"
    low, high = result.intervals["accuracy"]["low"], result.intervals["accuracy"]["high"]
    assert low <= result.metrics["accuracy"] <= high


def test_quick_start_is_two_commands_and_ci_runs_them():
    quick = re.split(r"\n##+ ", README.split("## Quick start", 1)[1], maxsplit=1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    commands = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    for command in commands:  # each installs what it needs first (torch pinned to its CPU build)
        assert command.startswith("pip install torch==2.13.0 ")
    assert commands[0].endswith("frbench evaluate --model sface --protocol demo")
    assert commands[1].endswith("python -m pytest -q")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "torch==2.13.0" in ci and '-e ".[dev]"' in ci and "python -m pytest -q" in ci
    assert "evaluate --model sface --protocol demo" in ci and "pip wheel" in ci
