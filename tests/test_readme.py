"""Every runnable Python example in the README runs as written, twice in the same folder, on
SQLite (the default: no URL set), on PostgreSQL and on MySQL/MariaDB (``ROMANCY_TRIO_URL`` names
a database made for that example), each run in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests._paths import PYTHONPATH, ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
RUNNABLE = [b for b in BLOCKS if "trio.run(main)" in b]


def example_id(code: str) -> str:
    """The README heading the example sits under, e.g. ``events-and-timers``."""
    heading = re.findall(r"^#+ (.+)$", README[: README.index(code)], re.M)[-1]
    return "-".join(re.findall(r"[a-z0-9]+", heading.lower()))


def run_example(
    code: str, folder: Path, url: str | None, *args: str, listener_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    script = folder / "example.py"
    script.write_text(code)
    env = {"PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", "")}
    if url is not None:
        env["ROMANCY_TRIO_URL"] = url
    if listener_url is not None:
        env["ROMANCY_TRIO_LISTENER_URL"] = listener_url
    return subprocess.run([sys.executable, str(script), *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env=env)


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


def test_the_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) >= 9
    assert not [b for b in RUNNABLE if "open_app(\"" in b], "examples take their URL from the env"


POSTGRES_ONLY = {"behind-a-connection-pooler-pgbouncer"}
"""Sections whose examples claim PostgreSQL only (PgBouncer pools PostgreSQL connections;
the example's SQL says ``ON CONFLICT``): they are not run on MySQL."""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
@pytest.mark.parametrize("code", RUNNABLE, ids=example_id)
def test_readme_example_runs_twice(code: str, backend: str, tmp_path: Path,
                                   request: pytest.FixtureRequest) -> None:
    if backend == "mysql" and example_id(code) in POSTGRES_ONLY:
        pytest.skip("a PostgreSQL-only example (it also runs on SQLite, the local default)")
    url = None if backend == "sqlite" else request.getfixturevalue(
        "fresh_mysql_url" if backend == "mysql" else "fresh_pg_url")
    for run in ("first", "second"):
        done = run_example(code, tmp_path, url)
        assert done.returncode == 0, f"{run} run:\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), "an example should show what it did"
    if backend == "sqlite":
        assert (tmp_path / "romancy.db").exists(), "without a URL, the SQLite default is used"
