"""Database URLs: which driver, which SQL module, and migrations at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

from romancy_notify import LinkTimeouts

from .._errors import ConfigurationError
from .._redact import redact_url
from ._migrate import migrate_postgres, migrate_sqlite
from ._pg_url import check_postgres_url
from ._postgres import PostgresDatabase, ensure_schema
from ._schema import qualify, quote_identifier
from ._sqlite import open_sqlite
from ._store import Store
from ._types import Topics

DEFAULT_URL = "sqlite:///romancy.db"
_PG_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ConfigurationError(
            f"bad SQLite URL {redact_url(url)!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return unquote(rest[1:])


def check_url(url: str) -> str:
    """Return the dialect a URL names, or raise ConfigurationError naming the problem."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        sqlite_path(url)
        return "sqlite"
    if scheme in _PG_SCHEMES:
        check_postgres_url(url)
        return "postgres"
    if scheme in ("mysql", "mariadb"):
        from ._mysql_url import parse_url

        parse_url(url)
        return "mysql"
    raise ConfigurationError(
        f"database URL {redact_url(url)!r} has unknown scheme {scheme!r}; "
        "expected sqlite:///path.db, postgresql://user@host/dbname or mysql://user@host/dbname"
    )


@asynccontextmanager
async def open_store(
    url: str, *, schema: str = "romancy", pool_size: int = 10, migrate: bool = True,
    wait_for_database: float = 0.0, link: LinkTimeouts | None = None,
    session_url: str | None = None, prepared_statements: bool | None = None,
) -> AsyncIterator[Store]:
    """Open the database a URL names, apply migrations, yield a Store; close on exit.

    PostgreSQL: ``session_url`` is where the worker's own session goes (it holds a
    session-level advisory lock), if not to ``url`` - a direct connection when ``url`` is a
    transaction-pooling proxy. ``prepared_statements``: server-side prepared statements on the
    pool; None: on, unless a separate ``session_url`` is given (`AppConfig.prepared_statements`).
    ``link``: keepalives and ``tcp_user_timeout`` for every PostgreSQL connection (both ends;
    the URL's own win). Unreachable: `StorageUnavailableError` naming host, port and cause,
    after retrying for up to ``wait_for_database`` seconds."""
    dialect = check_url(url)
    if dialect == "sqlite":
        from .sql_sqlite import QUERIES as SQLITE
        from .sql_sqlite import RETENTION_QUERIES as SQLITE_RETENTION
        from .sql_sqlite import WAIT_QUERIES as SQLITE_WAITS

        db = await open_sqlite(sqlite_path(url))
        try:
            if migrate:
                await migrate_sqlite(db)
            yield Store(db, SQLITE, SQLITE_WAITS, Topics.for_schema("main"), SQLITE_RETENTION)
        finally:
            await db.aclose()
        return
    if dialect == "mysql":
        async with _open_mysql(url, schema=schema, pool_size=pool_size, migrate=migrate) as store:
            yield store
        return
    from .sql_postgres import QUERIES as POSTGRES
    from .sql_postgres import RETENTION_QUERIES as POSTGRES_RETENTION
    from .sql_postgres import WAIT_QUERIES as POSTGRES_WAITS

    try:
        quote_identifier(schema)
    except ValueError as exc:
        raise ConfigurationError(f"PostgreSQL schema: {exc}") from None
    await ensure_schema(url, schema, wait_for_database=wait_for_database, link=link)
    if prepared_statements is None:  # a separate session URL: the pool goes through a pooler
        prepared_statements = session_url is None or session_url == url
    pg = PostgresDatabase(url, schema=schema, max_size=pool_size, link=link,
                          session_conninfo=session_url, prepared_statements=prepared_statements)
    try:
        if migrate:
            await migrate_postgres(pg)
        yield Store(pg, qualify(POSTGRES, schema), qualify(POSTGRES_WAITS, schema),
                    Topics.for_schema(schema), qualify(POSTGRES_RETENTION, schema))
    finally:
        await pg.aclose()


@asynccontextmanager
async def _open_mysql(url: str, *, schema: str, pool_size: int, migrate: bool
                      ) -> AsyncIterator[Store]:
    """MySQL/MariaDB: the library's tables live in the database the URL names (MySQL has no
    schemas within a database: ``schema`` is not used). The server is checked first
    (reachable, login, database, version); nothing is created before that passed."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"database URL {redact_url(url)!r}: MySQL/MariaDB needs the PyMySQL driver: "
            "pip install 'romancy-trio[mysql]'") from None
    from ._migrate import migrate_mysql
    from ._mysql import MysqlDatabase, check_server
    from ._mysql_conn import parse_url
    from .sql_mysql import QUERIES as MYSQL
    from .sql_mysql import RETENTION_QUERIES as MYSQL_RETENTION
    from .sql_mysql import WAIT_QUERIES as MYSQL_WAITS
    from .sql_mysql import qualify_mysql

    params = parse_url(url)
    schema = params.database
    try:
        queries = qualify_mysql(MYSQL, schema)
    except ValueError as exc:
        raise ConfigurationError(f"MySQL URL {redact_url(url)!r}: {exc}") from None
    await check_server(params)
    db = MysqlDatabase(params, schema=schema, max_size=pool_size)
    try:
        if migrate:
            await migrate_mysql(db)
        yield Store(db, queries, qualify_mysql(MYSQL_WAITS, schema), Topics.for_schema(schema),
                    qualify_mysql(MYSQL_RETENTION, schema))
    finally:
        await db.aclose()
