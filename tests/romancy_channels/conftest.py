"""Fixtures for the channel engine: the real drivers of romancy_trio, one fresh database each.

(Tests may import romancy_trio; the package ``channels`` itself may not.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from romancy_channels import ChannelEngine, ChannelTx, migrations, quote_identifier
from romancy_trio.storage._migrate import migrate_mysql
from romancy_trio.storage._mysql import MysqlDatabase
from romancy_trio.storage._mysql_conn import parse_url
from romancy_trio.storage._postgres import PostgresDatabase
from romancy_trio.storage._sqlite import SqliteDatabase, open_sqlite

from ..conftest import mysql_url, with_search_path

T0 = 1_700_000_000.0
"""A fixed 'now' for publishes and subscriptions."""


@dataclass(frozen=True)
class Env:
    dialect: str
    db: PostgresDatabase | SqliteDatabase
    engine: ChannelEngine

    def tx(self) -> AbstractAsyncContextManager[ChannelTx]:
        return self.db.transaction()

    async def scalar(self, query: str) -> object:
        """One value of a plain SQL query (no parameters), in its own transaction."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(query)
        assert row is not None
        return row[0]


async def migrate_postgres(db: PostgresDatabase) -> None:
    async with db.transaction() as tx:
        await tx.execute(f"SET LOCAL search_path TO {quote_identifier(db.schema)}")
        for _, up in migrations("postgres"):
            await tx.execute(up)


async def open_env(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    db: PostgresDatabase | SqliteDatabase | MysqlDatabase
    if dialect == "mysql":
        database: str = request.getfixturevalue("mysql_db")
        url = mysql_url(request.getfixturevalue("mysql_dsn"), database)
        db = MysqlDatabase(parse_url(url), schema=database, max_size=12)
        await migrate_mysql(db)  # the library's and the channels' tables
    elif dialect == "sqlite":
        db = await open_sqlite(str(tmp_path / "channels.db"))
        for _, up in migrations("sqlite"):
            await db.executescript(up)
    else:
        dsn: str = request.getfixturevalue("pg_dsn")
        schema: str = request.getfixturevalue("pg_schema")
        # the tests' own SQL resolves in the schema through the URL; the engine names it
        db = PostgresDatabase(with_search_path(dsn, schema), schema=schema, max_size=12)
        await migrate_postgres(db)
    return Env(dialect, db, ChannelEngine(dialect, schema=getattr(db, "schema", "main")))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    e = await open_env(request.param, request, tmp_path)
    try:
        yield e
    finally:
        await e.db.aclose()


@pytest.fixture
async def pg_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    e = await open_env("postgres", request, tmp_path)
    try:
        yield e
    finally:
        await e.db.aclose()


@pytest.fixture(params=["postgres", "mysql"])
async def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    """The servers several processes share (multi-process tests)."""
    e = await open_env(request.param, request, tmp_path)
    try:
        yield e
    finally:
        await e.db.aclose()
