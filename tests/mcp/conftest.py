"""Fixtures of the MCP tests: a PostgreSQL schema per test, and the server's command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from .._paths import PYTHONPATH, ROOT
from ..conftest import with_search_path

try:
    import mcp  # noqa: F401
except ImportError:  # the test extra installs it: missing under CI is a broken set-up
    if os.environ.get("CI"):
        raise
    collect_ignore_glob = ["test_*.py"]  # locally: pip install '.[mcp]' to run these

WORKFLOWS = "tests.mcp.mcp_workflows"


@dataclass(frozen=True)
class Db:
    url: str
    schema: str

    def server_args(self, *extra: str) -> list[str]:
        """``python -m romancy_trio mcp ...`` arguments (after the interpreter)."""
        return ["-m", "romancy_trio", "mcp", "--url", self.url, "--schema", self.schema,
                "--workflows", WORKFLOWS, *extra]


@pytest.fixture
def db(pg_dsn: str, pg_schema: str) -> Db:
    # the compensation's own table lands in the test schema through the URL's search_path
    return Db(with_search_path(pg_dsn, pg_schema), pg_schema)


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[IO[str]]:
    """Where the server subprocesses' stderr goes (read it when a test fails)."""
    with open(tmp_path / "mcp-server.log", "a") as log:
        yield log


def server_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PYTHONPATH}


PYTHON = sys.executable
CWD = str(ROOT)
