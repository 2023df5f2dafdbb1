"""Shared fixtures: every async test runs on Trio; PostgreSQL tests get their own schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

DEFAULT_PG_DSN = "postgresql://root@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL DSN for tests. Unreachable: skip locally, fail loudly in CI."""
    dsn = os.environ.get("ROMANCY_TEST_PG_DSN", DEFAULT_PG_DSN)
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {dsn!r} (set ROMANCY_TEST_PG_DSN): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return dsn


@pytest.fixture(scope="session")
def pg_schema_base(pg_dsn: str) -> Iterator[str]:
    """A prefix unique to this test session; schemas created under it are dropped at the end."""
    prefix = f"rt_test_{uuid.uuid4().hex[:8]}"
    yield prefix
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(name))
            )


@pytest.fixture
def pg_schema(pg_dsn: str, pg_schema_base: str) -> str:
    """A fresh, empty schema for one test."""
    name = f"{pg_schema_base}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
    return name
