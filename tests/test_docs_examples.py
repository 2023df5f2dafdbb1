"""Every code example of the documentation site is a file in ``docs/examples/``, pulled into its
page with ``--8<--``; this runs each one as written, twice in the same folder, in its own
process, on every backend its first line claims:

- ``# tested on: sqlite, postgres, mysql``: SQLite is the default (no URL set: the example
  must create ``romancy.db`` in its folder), PostgreSQL and MySQL/MariaDB get
  ``ROMANCY_TRIO_URL`` naming a database made for that example. Examples that claim
  ``postgres`` also run behind PgBouncer (tests/test_docs_examples_pgbouncer.py). An example
  that leaves out ``mysql`` is PostgreSQL-only (its SQL says ``ON CONFLICT``).
- ``# tested on: no database``: plain Python, run twice with no URL.
- ``# tested by: tests/...py``: an example that needs more than a database (a fake LLM
  provider, a primary and its standby, an OTLP receiver, Trio's MockClock) is run by that
  test file, which must name the example's file.

A run passes when the program exits 0 and prints something."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests._paths import PYTHONPATH, ROOT

EXAMPLES_DIR = ROOT / "docs" / "examples"
BACKENDS = ("sqlite", "postgres", "mysql")
_HEADER = re.compile(r"\A# tested (on|by): (.+)\n")


@dataclass(frozen=True)
class Example:
    path: Path
    backends: tuple[str, ...]  # () for "no database" and for "tested by"
    tested_by: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def code(self) -> str:
        return self.path.read_text()


def parse_example(path: Path) -> Example:
    """The example's claim, from its first line; a file without one is an error."""
    found = _HEADER.match(path.read_text())
    if found is None:
        raise ValueError(f"{path.name}: the first line must be '# tested on: ...' or "
                         "'# tested by: tests/...'")
    kind, value = found.group(1), found.group(2).strip()
    if kind == "by":
        return Example(path, (), tested_by=value)
    if value == "no database":
        return Example(path, ())
    claimed = tuple(b.strip() for b in value.split(","))
    unknown = [b for b in claimed if b not in BACKENDS]
    if unknown or not claimed:
        raise ValueError(f"{path.name}: unknown backend(s) {unknown} (known: {BACKENDS})")
    return Example(path, claimed)


EXAMPLES = [parse_example(p) for p in sorted(EXAMPLES_DIR.glob("*.py"))]
RUN_HERE = [e for e in EXAMPLES if e.tested_by is None]
ON_BACKEND = [(e, b) for e in RUN_HERE for b in (e.backends or ("none",))]
RUNNABLE = [e.code for e in RUN_HERE if "trio.run(main)" in e.code]
"""The code of every example that runs a ``main`` (what tests/test_readme.py used to collect
from the README)."""


def example(name: str) -> Example:
    return next(e for e in EXAMPLES if e.name == name)


def run_example(code: str, folder: Path, url: str | None, *args: str,
                listener_url: str | None = None) -> subprocess.CompletedProcess[str]:
    script = folder / "example.py"
    script.write_text(code)
    # PYTHONFAULTHANDLER: a native crash (e.g. SIGSEGV at exit) shows every thread's traceback
    env = {"PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", ""), "PYTHONFAULTHANDLER": "1"}
    if url is not None:
        env["ROMANCY_TRIO_URL"] = url
    if listener_url is not None:
        env["ROMANCY_TRIO_LISTENER_URL"] = listener_url
    return subprocess.run([sys.executable, str(script), *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env=env)


def check_runs_twice(code: str, folder: Path, url: str | None,
                     listener_url: str | None = None) -> None:
    """Run ``code`` twice in ``folder``; an AssertionError says what went wrong."""
    for run in ("first", "second"):
        done = run_example(code, folder, url, listener_url=listener_url)
        assert done.returncode == 0, f"{run} run exited {done.returncode}:\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), f"{run} run: an example should show what it did"


@pytest.fixture
def fresh_pg_url(pg_dsn: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (so examples use the default schema), dropped after."""
    parts = urlsplit(pg_dsn)
    assert parts.scheme in ("postgresql", "postgres"), "ROMANCY_TEST_PG_DSN must be a URL here"
    name = f"rt_readme_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_mysql_url(mysql_dsn: str) -> Iterator[str]:
    """A new, empty MySQL/MariaDB database for one example, dropped after."""
    from .conftest import _mysql_connect, mysql_url

    name = f"rt_readme_{uuid.uuid4().hex[:12]}"
    conn = _mysql_connect(mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield mysql_url(mysql_dsn, name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_every_example_claims_where_it_runs() -> None:
    assert len(EXAMPLES) >= 30
    assert len(RUNNABLE) >= 20
    assert not [e.name for e in EXAMPLES if 'open_app("' in e.code], \
        "examples take their URL from the environment"
    for e in EXAMPLES:
        if e.tested_by is not None:
            test_file = ROOT / e.tested_by
            assert test_file.is_file(), f"{e.name}: {e.tested_by} does not exist"
            assert f"{e.name}.py" in test_file.read_text(), \
                f"{e.tested_by} does not name {e.name}.py: nothing would run it"


def test_every_example_is_on_a_page_and_every_page_snippet_exists() -> None:
    pages = {p: p.read_text() for p in (ROOT / "docs").rglob("*.md")}
    included = {m for text in pages.values()
                for m in re.findall(r'--8<-- "docs/examples/([\w-]+\.py)"', text)}
    assert included == {e.path.name for e in EXAMPLES}
    fences = [p.relative_to(ROOT) for p, text in pages.items() if "```python\nimport" in text
              or "```python\nfrom" in text or "```python\nasync def" in text]
    assert not fences, f"inline Python examples (make them files in docs/examples): {fences}"


@pytest.mark.parametrize(("ex", "backend"), ON_BACKEND, ids=lambda v: getattr(v, "name", v))
def test_docs_example_runs_twice(ex: Example, backend: str, tmp_path: Path,
                                 request: pytest.FixtureRequest) -> None:
    url = None if backend in ("sqlite", "none") else request.getfixturevalue(
        "fresh_mysql_url" if backend == "mysql" else "fresh_pg_url")
    check_runs_twice(ex.code, tmp_path, url)
    if backend == "sqlite":
        assert (tmp_path / "romancy.db").exists(), "without a URL, the SQLite default is used"


def test_a_broken_example_is_caught(tmp_path: Path) -> None:
    """The checker fails an example that raises, one that prints nothing, and a file whose
    first line claims nothing."""
    raising = "import trio\n\nasync def main() -> None:\n    raise ValueError('broken')\n\n" \
              "trio.run(main)\n"
    with pytest.raises(AssertionError, match="first run exited 1"):
        check_runs_twice(raising, tmp_path, None)
    with pytest.raises(AssertionError, match="should show what it did"):
        check_runs_twice("x = 1\n", tmp_path, None)
    unclaimed = tmp_path / "unclaimed.py"
    unclaimed.write_text("print('hello')\n")
    with pytest.raises(ValueError, match="first line must be"):
        parse_example(unclaimed)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("# tested on: sqlite, oracle\nprint('hello')\n")
    with pytest.raises(ValueError, match="oracle"):
        parse_example(wrong)
