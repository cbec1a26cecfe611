"""The README's notebook examples run as written (the ``python`` code blocks, in order)."""

from __future__ import annotations

import re

from conftest import REPO


def test_readme_python_blocks_run(capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "0." in out
