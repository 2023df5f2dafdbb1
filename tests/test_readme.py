"""The README is short: what the project is, the two set-up commands, a quick start and links
into the documentation site. Its quick start is the docs example ``quickstart.py`` (run on
every backend by tests/test_docs_examples.py), and every link in it reaches a file.

(The examples that used to live here are the docs' now; ``fresh_pg_url``, ``run_example``
and ``RUNNABLE`` are re-exported for tests that imported them from here.)"""

from __future__ import annotations

import re

from tests._paths import ROOT
from tests.test_docs_examples import RUNNABLE, example, fresh_pg_url, run_example

__all__ = ["RUNNABLE", "fresh_pg_url", "run_example"]

README = (ROOT / "README.md").read_text()
SET_UP = """\
```sh
python3 -m pip install . && python3 -m romancy_trio demo      # a demo workflow on SQLite
python3 -m pip install nox && python3 -m nox                  # lint, type checks, all tests
```"""


def test_the_two_set_up_commands_are_as_they_were() -> None:
    assert SET_UP in README
    assert "python3 -m nox" in (ROOT / ".ci" / "run").read_text()  # .ci/run runs the second


def test_the_quick_start_is_the_tested_docs_example() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks == [example("quickstart").code], "the README's only example is quickstart.py"
    getting_started = (ROOT / "docs" / "getting-started.md").read_text()
    assert '--8<-- "docs/examples/quickstart.py"' in getting_started
    assert SET_UP in getting_started


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    assert len(README.splitlines()) < 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert len(local) >= 20
    missing = [link for link in local if not (ROOT / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")}
    assert {"docs/errors.md", "docs/comparison.md", "docs/api/index.md"} <= set(local)
    assert set(local) <= pages
