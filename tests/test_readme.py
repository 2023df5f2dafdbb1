"""Every Python example in the README runs as written (each in its own process and folder)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._sources import PYTHONPATH

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
RUNNABLE = [b for b in BLOCKS if "trio.run(main)" in b]


def test_the_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) >= 6


@pytest.mark.parametrize("code", RUNNABLE, ids=lambda c: c.split("def main")[0][-40:].strip())
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": PYTHONPATH, "PATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "an example should show what it did"
