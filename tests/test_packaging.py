"""A real install: this project (built as a wheel, not editable) next to Django Channels in a
fresh virtualenv. Its three top-level packages are named so that they cannot clash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._prereq import missing

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import channels.layers  # Django Channels' own module: the name 'channels' is still theirs
import romancy_channels, romancy_notify, romancy_trio
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

for module in (romancy_trio, romancy_channels, romancy_notify):
    assert "site-packages" in module.__file__, module.__file__  # installed, not the worktree
print("channels from", channels.__file__)


@activity
async def double(ctx: ActivityContext, n: int) -> int:
    return 2 * n


@workflow
async def twice(ctx: WorkflowContext, n: int) -> int:
    return await double(ctx, n)


async def main() -> None:
    async with open_app("sqlite:///installed.db") as app:
        print("result", await app.run(twice, 21, timeout=30))


trio.run(main)
"""


def _pip(venv_python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},  # pip's cache is reused
    )


@pytest.mark.slow
def test_installed_next_to_django_channels(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True,
                   timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    probe = _pip(python, "download", "--no-deps", "--dest", str(tmp_path / "probe"), "channels")
    if probe.returncode != 0:
        missing(f"the package index is unreachable (pip download channels):\n{probe.stderr}")
    install = _pip(python, "install", str(ROOT), "channels")
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    (tmp_path / "check.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROMANCY_TRIO_URL")}
    done = subprocess.run([str(python), "check.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "result 42" in done.stdout, done.stdout
    assert "/site-packages/channels/" in done.stdout, done.stdout
