"""The programs in examples/ run as their docstrings say (examples/http_server.py is served
by tests/romancy_trio/test_http_lifespan.py and stopped with Ctrl+C in test_process_hygiene)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._paths import PYTHONPATH
from tests.test_docs_examples import fresh_pg_url

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["fresh_pg_url"]  # a fixture, used by name


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_channel_feed_example_prints_what_the_feed_receives(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = "sqlite:///feed.db" if backend == "sqlite" else request.getfixturevalue("fresh_pg_url")
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    for _ in range(2):  # the second run appends to the same database
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "channel_feed.py"), url, "0"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.splitlines()
        assert lines[0].startswith("feed at ws://127.0.0.1:"), done.stdout
        assert sum(line.startswith("#") for line in lines) == 4, done.stdout
        assert "published outside any workflow" in done.stdout
        assert lines[-1].startswith("resume later with after={'orders': "), done.stdout
