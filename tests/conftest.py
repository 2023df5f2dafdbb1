"""Shared fixtures: every async test runs on Trio; PostgreSQL tests get their own schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests._prereq import missing

pytest_plugins = ["tests.pgcluster", "tests.pgbouncer"]  # private servers: pg_cluster, pgbouncer_*

DEFAULT_PG_DSN = "postgresql://root@127.0.0.1:5432/test"

# Every subprocess a test starts inherits this: one that crashes in native code (SIGSEGV,
# SIGABRT) prints every thread's Python traceback to its stderr, which the failure shows.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` whose connections start with ``search_path`` = ``schema`` (a startup option of
    the user's URL: the library sets no session state, and qualifies its own tables)."""
    option = quote(f"-csearch_path={schema}", safe="")
    return f"{dsn}{'&' if '?' in dsn else '?'}options={option}"


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
        missing(f"PostgreSQL is unreachable at {dsn!r} (set ROMANCY_TEST_PG_DSN): {exc}")
    return dsn


_SESSION_LOCK = 0x726F6D61  # advisory lock class of test sessions ("roma")


def _session_key(prefix: str) -> int:
    """The advisory lock key of the session that owns schemas ``rt_test_<8 hex>_*``."""
    return int(prefix.removeprefix("rt_test_")[:8], 16) - 2**31  # fits a signed int4


def _drop_schemas(conn: psycopg.Connection[Any], prefix: str) -> None:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
    ).fetchall()
    for (name,) in rows:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_schema_base(pg_dsn: str) -> Iterator[str]:
    """A prefix unique to this test session; schemas created under it are dropped at the end.

    The session holds an advisory lock for its prefix while it runs. At the start it drops the
    schemas of sessions that hold no lock any more (killed runs never reach their own
    cleanup, and thousands of leftover tables bloat the catalogs and slow every later run)."""
    prefix = f"rt_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as guard:
        guard.execute("SELECT pg_advisory_lock(%s, %s)", (_SESSION_LOCK, _session_key(prefix)))
        others = guard.execute(
            "SELECT DISTINCT substr(nspname, 1, 16) FROM pg_namespace "
            "WHERE nspname ~ '^rt_test_[0-9a-f]{8}_' AND nspname NOT LIKE %s", (prefix + "%",)
        ).fetchall()
        for (other,) in others:
            key = (_SESSION_LOCK, _session_key(other))
            if guard.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone() == (True,):
                _drop_schemas(guard, other)  # its session is gone
                guard.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        yield prefix
        _drop_schemas(guard, prefix)


@pytest.fixture
def pg_schema(pg_dsn: str, pg_schema_base: str) -> str:
    """A fresh, empty schema for one test."""
    name = f"{pg_schema_base}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
    return name


DEFAULT_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"


def _mysql_connect(dsn: str, database: str | None = None) -> Any:
    import pymysql

    from romancy_trio.storage._mysql_conn import parse_url

    p = parse_url(dsn)
    return pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password,
                           database=database or p.database, connect_timeout=5,
                           autocommit=True, charset="utf8mb4")


@pytest.fixture(scope="session")
def mysql_dsn() -> str:
    """The MySQL/MariaDB DSN for tests. Unreachable: skip locally, fail loudly in CI."""
    import pymysql

    dsn = os.environ.get("ROMANCY_TEST_MYSQL_DSN", DEFAULT_MYSQL_DSN)
    try:
        _mysql_connect(dsn).close()
    except pymysql.MySQLError as exc:
        missing(f"MySQL is unreachable at {dsn!r} (set ROMANCY_TEST_MYSQL_DSN): {exc}")
    return dsn


def _drop_mysql_databases(conn: Any, prefix: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (prefix.replace("_", "\\_") + "%",))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mysql_db_base(mysql_dsn: str) -> Iterator[str]:
    """A prefix unique to this test session; databases created under it are dropped at the
    end. Like `pg_schema_base`, the session holds a named lock for its prefix, and drops the
    databases of sessions that hold none any more (killed runs)."""
    prefix = f"rt_test_{uuid.uuid4().hex[:8]}"
    guard = _mysql_connect(mysql_dsn)
    try:
        with guard.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (prefix,))
            cur.execute("SHOW DATABASES LIKE 'rt\\_test\\_%'")
            others = {name[:16] for (name,) in cur.fetchall()} - {prefix}
            for other in others:
                cur.execute("SELECT GET_LOCK(%s, 0)", (other,))
                if cur.fetchone() == (1,):
                    _drop_mysql_databases(guard, other + "_")
                    cur.execute("SELECT RELEASE_LOCK(%s)", (other,))
        yield prefix
        _drop_mysql_databases(guard, prefix + "_")
    finally:
        guard.close()


@pytest.fixture
def mysql_db(mysql_dsn: str, mysql_db_base: str) -> str:
    """A fresh, empty database for one test (a URL naming it holds the library's tables too)."""
    name = f"{mysql_db_base}_{uuid.uuid4().hex[:8]}"
    conn = _mysql_connect(mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        conn.close()
    return name


def mysql_url(dsn: str, database: str) -> str:
    """``dsn`` naming ``database`` instead."""
    base = dsn.split("?", 1)[0].rsplit("/", 1)[0]
    return f"{base}/{database}"
