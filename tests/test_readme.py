"""Every Python snippet in README.md runs as written, each in a fresh interpreter.

A reader copies one block into a new session: so each block must carry its own
imports and data. Blocks run in a temporary folder (they write files such as
``net.tex`` and ``weights.npz``) with the project's environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _first_line(block: str) -> str:
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return lines[0][:40] if lines else "empty"


def test_readme_has_python_snippets():
    assert len(BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{i}:{_first_line(b)}" for i, b in
                                              enumerate(BLOCKS)])
def test_readme_snippet_runs_as_written(block: str, tmp_path: Path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"README snippet failed (exit {result.returncode}):\n{block}\n--- stderr ---\n"
        f"{result.stderr[-4000:]}")


def test_readme_does_not_point_outside_the_clone():
    text = README.read_text(encoding="utf-8")
    assert "../shared" not in text, "a clone has no ../shared folder: name the notes in words"
