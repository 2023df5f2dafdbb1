"""Numbered, dbmate-compatible SQL migrations (``-- migrate:up`` / ``-- migrate:down``).

Applied at start-up and by ``python -m romancy_trio migrate URL``. Safe when several workers start
at once: PostgreSQL takes a transaction-scoped advisory lock; SQLite a ``BEGIN IMMEDIATE``; MySQL
a named lock (``GET_LOCK``; its DDL is not transactional, so each migration's statements and its
version row are applied one after another under that lock, as dbmate does). Applied
versions are kept in ``schema_migrations`` (dbmate's table and column names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from ._postgres import PostgresDatabase
from ._schema import quote_identifier
from ._sqlite import SqliteDatabase

if TYPE_CHECKING:
    from ._mysql import MysqlDatabase  # PyMySQL: the optional extra

_LOCK_KEY = 0x526F6D616E6379  # "Romancy"
_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    up: str


def all_migrations(dialect: str) -> list[Migration]:
    """romancy_trio's own migrations, then those of the ``channels`` package (namespaced)."""
    import romancy_channels

    own = load_migrations(dialect)
    theirs = [Migration(f"channels_{version}", f"channels/{version}", up)
              for version, up in romancy_channels.migrations(dialect)]
    return own + theirs


def load_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("romancy_trio.storage").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        if "-- migrate:up" not in text:
            raise ValueError(f"migration {entry.name} has no '-- migrate:up' section")
        up = text.split("-- migrate:up", 1)[1].split("-- migrate:down", 1)[0].strip()
        found.append(Migration(match.group(1), entry.name, up))
    return sorted(found, key=lambda m: int(m.version))


_CREATE_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY)"


async def migrate_postgres(db: PostgresDatabase) -> list[str]:
    """Apply missing migrations; return the versions applied now."""
    applied_now = []
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        # Migrations write unqualified names: they resolve in the library's schema for this
        # transaction only (SET LOCAL ends with it; pooled connections keep no state).
        await tx.execute(f"SET LOCAL search_path TO {quote_identifier(db.schema)}")
        await tx.execute(_CREATE_TABLE)
        done = {r[0] for r in await tx.fetchall("SELECT version FROM schema_migrations")}
        for migration in all_migrations("postgres"):
            if migration.version in done:
                continue
            await tx.execute(migration.up)
            await tx.execute(
                "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
            )
            applied_now.append(migration.version)
    return applied_now


async def migrate_mysql(db: MysqlDatabase) -> list[str]:
    """Apply missing migrations on a connection of their own in the library's database (each
    migration sent whole, as dbmate does: procedure bodies hold ';'). Returns the versions
    applied now."""
    import pymysql

    from ._mysql_conn import connect_blocking, run_statement

    lock = f"romancy_migrate:{db.schema}"

    def apply() -> list[str]:
        raw = connect_blocking(db.params, db.schema)
        try:
            run_statement(raw, "SELECT GET_LOCK(%s, 60)", (lock,))
            try:
                run_statement(raw, _CREATE_TABLE, ())
                done = {r[0] for r in run_statement(
                    raw, "SELECT version FROM schema_migrations", ())[1]}
                todo = [m for m in all_migrations("mysql") if m.version not in done]
                for migration in todo:
                    run_statement(raw, migration.up, ())
                    run_statement(raw, "INSERT INTO schema_migrations (version) VALUES (%s)",
                                  (migration.version,))
                    raw.commit()
            finally:
                run_statement(raw, "SELECT RELEASE_LOCK(%s)", (lock,))
            return [m.version for m in todo]
        finally:
            try:
                raw.close()
            except pymysql.MySQLError:
                pass

    import trio

    return await trio.to_thread.run_sync(apply)


async def migrate_sqlite(db: SqliteDatabase) -> list[str]:
    def _apply(conn: object) -> list[str]:
        import sqlite3

        assert isinstance(conn, sqlite3.Connection)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_CREATE_TABLE)
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            todo = [m for m in all_migrations("sqlite") if m.version not in done]

            for migration in todo:
                for statement in _statements(migration.up):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?)", (migration.version,)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [m.version for m in todo]

    return await db.run(_apply)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside literals)."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
