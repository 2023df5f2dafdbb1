"""Fixtures for runtime tests: one database URL + config per backend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from romancy_trio import AppConfig
from romancy_trio.storage._db import Params, Row
from romancy_trio.storage._placeholders import translate

from ..conftest import mysql_url, with_search_path
from ..pgbouncer import PgBouncer

POOLER_ENV = "ROMANCY_TEST_PGBOUNCER"
"""``transaction``: PostgreSQL backends connect through a private PgBouncer in transaction mode."""


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    config: AppConfig
    direct_url: str | None = None
    """PostgreSQL: a URL straight to the server, for a test's own session state (its own
    LISTEN): `url` may go through a transaction pooler (``ROMANCY_TEST_PGBOUNCER``)."""


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    fast = dict(lease_ttl=2.0, heartbeat_interval=0.5, fallback_interval=5.0)
    if name == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'wf.db'}", AppConfig(**fast))
    if name == "mysql":
        # one fresh database: the URL names it (the tests' own SQL resolves there) and the
        # library's tables live in it
        my_dsn: str = request.getfixturevalue("mysql_dsn")
        database: str = request.getfixturevalue("mysql_db")
        return Backend("mysql", mysql_url(my_dsn, database),
                       AppConfig(schema=database, **fast))
    dsn: str = request.getfixturevalue("pg_dsn")
    schema: str = request.getfixturevalue("pg_schema")
    if os.environ.get(POOLER_ENV, "") not in ("", "transaction"):
        raise pytest.UsageError(f"{POOLER_ENV} must be 'transaction' or unset")
    if os.environ.get(POOLER_ENV) == "transaction":
        # the CI leg "tests-pgbouncer": the app's pool through a PgBouncer in transaction
        # mode, LISTEN and the worker session straight to the server (worker processes
        # started by the test inherit the variable)
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer_transaction")
        request.getfixturevalue("monkeypatch").setenv("ROMANCY_TRIO_LISTENER_URL", dsn)
        return Backend("postgres", bouncer.url(schema=schema), AppConfig(schema=schema, **fast),
                       with_search_path(dsn, schema))
    # the tests' own SQL (their tables, and reads of the library's) resolves in the test's
    # schema through the URL; the library itself needs no search_path
    direct = with_search_path(dsn, schema)
    return Backend("postgres", direct, AppConfig(schema=schema, **fast), direct)


async def fetch(app: Any, query: str, params: Params = ()) -> list[Row]:
    """The rows of one statement in the portable style (``?`` / ``:name``), run by the app's
    database on its own (the library's handle takes the driver's style)."""
    db = app.store.db
    return await db.fetchall(*translate(query, params, db.dialect))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend("postgres", request, tmp_path)


@pytest.fixture
def mysql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend("mysql", request, tmp_path)


@pytest.fixture(params=["postgres", "mysql"])
def server_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The database servers that several processes share (multi-process tests)."""
    return make_backend(request.param, request, tmp_path)
