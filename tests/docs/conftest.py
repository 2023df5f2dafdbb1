"""The documentation site, built once per test session with ``mkdocs build --strict`` (what
``nox -s docs`` runs) into a temporary folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._paths import PYTHONPATH, ROOT


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site's folder. Without mkdocs (the ``docs`` extra): skip locally, fail in CI."""
    if importlib.util.find_spec("mkdocs") is None:
        message = "mkdocs is not installed: pip install '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(site)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-5000:]}"
    assert (site / "index.html").is_file()
    return site
