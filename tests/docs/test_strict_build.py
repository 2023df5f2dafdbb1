"""``mkdocs build --strict`` with this project's Markdown settings (mkdocs.yml's
``markdown_extensions`` and ``validation``) refuses a page that pulls in an example file that
does not exist, and a page with a link to a page that does not exist: a page cannot silently
lose its example or point nowhere."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._paths import ROOT


def build(tmp_path: Path, page: str) -> subprocess.CompletedProcess[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page)
    (tmp_path / "docs" / "examples").mkdir()
    (tmp_path / "docs" / "examples" / "hello.py").write_text("print('hello')\n")
    site = {"site_name": "t", "docs_dir": "docs", "site_dir": "site", "strict": True,
            "markdown_extensions": config["markdown_extensions"],
            "validation": config["validation"], "plugins": []}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(site))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(autouse=True)
def _mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: pip install '.[docs]'", pytrace=False)
        pytest.skip("mkdocs is not installed")


def test_a_page_with_its_example_builds(tmp_path: Path) -> None:
    done = build(tmp_path, '# t\n\n```python\n--8<-- "docs/examples/hello.py"\n```\n')
    assert done.returncode == 0, done.stderr
    assert "hello" in (tmp_path / "site" / "index.html").read_text()


def test_a_missing_example_file_fails_the_build(tmp_path: Path) -> None:
    done = build(tmp_path, '# t\n\n```python\n--8<-- "docs/examples/gone.py"\n```\n')
    assert done.returncode != 0
    assert "gone.py" in done.stderr


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    done = build(tmp_path, "# t\n\nSee [the guide](guides/nowhere.md).\n")
    assert done.returncode != 0
    assert "nowhere.md" in done.stderr
