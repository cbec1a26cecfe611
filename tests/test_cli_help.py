"""Every ``frbench`` command's ``--help`` teaches: a usable example, every option explained, a readable summary."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from fr_bench.cli import main

COMMANDS = sorted(main.commands)


def _help(*args: str) -> str:
    res = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert res.exit_code == 0, res.output
    return res.output


def test_top_level_help_lists_every_command_and_starts_users_off():
    text = _help()
    for name in COMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s", text, flags=re.M), name
    assert "frbench evaluate --model sface --protocol demo" in text
    assert "--help" in text and "FRBENCH_CACHE" in text and "FRBENCH_DEBUG" in text


def test_own_commands_have_untruncated_summaries():
    text = _help()
    own = [n for n in COMMANDS if main.commands[n].callback.__module__.startswith("fr_bench.cli")]
    assert {"evaluate", "compare", "leaderboard", "plot", "protocols", "conventions", "landmarks", "train", "study",
            "cluster"} <= set(own)
    for name in own:
        (line,) = [line for line in text.splitlines() if line.startswith(f"  {name} ")]
        assert not line.endswith("..."), line


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example(name):
    text = _help(name)
    assert re.search(r"^\s*Examples?\b", text, flags=re.M), f"{name}: no example"
    example = re.compile(rf"^\s+(frbench|torchrun .* -m fr_bench) {re.escape(name)}\b", flags=re.M)
    assert example.search(text), f"{name}: no example line running the command"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_explained(name):
    command = main.commands[name]
    if not command.callback.__module__.startswith("fr_bench.cli"):  # fr_bench.cli, cli_train, cli_report ...
        pytest.skip("not one of fr_bench's CLI modules")
    bare = [p.name for p in command.params if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert not bare, f"{name}: options without help: {bare}"


@pytest.mark.parametrize("name", COMMANDS)
def test_examples_parse(name):
    """Each own example's flags exist: the example runs as written (parsed, not executed)."""
    command = main.commands[name]
    if not command.callback.__module__.startswith("fr_bench.cli"):
        pytest.skip("not one of fr_bench's CLI modules")
    text = _help(name)
    for line in re.findall(rf"^\s+frbench {re.escape(name)}\b(.*)$", text, flags=re.M):
        args = [a for a in line.split("#")[0].split() if a != "\\"]
        ctx = command.make_context(name, [a.strip("'") for a in args], resilient_parsing=True)
        unknown = [a for a in ctx.args if a.startswith("-")]
        assert not unknown, f"{name}: example uses unknown flags {unknown}"


def test_the_cli_starts_without_torch_or_sklearn():
    """`frbench --help` (and every command's parsing) must not pay for torch or scikit-learn: they load only when a
    command runs (a module-level import in a command module, e.g. the clustering algorithms, would break this)."""
    import subprocess
    import sys

    code = ("import sys, fr_bench.cli; heavy = sorted(m for m in ('torch', 'sklearn', 'onnxruntime', 'cv2') "
            "if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing fr_bench.cli imported {out}"
