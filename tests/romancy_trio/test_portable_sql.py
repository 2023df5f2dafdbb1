"""ctx.db on every backend: one placeholder style, the driver's own through ``native``, and on
PostgreSQL the user's SQL in the user's search_path while the library keeps to its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from romancy_trio import (
    ActivityContext,
    ActivityFailedError,
    RetryPolicy,
    WorkflowContext,
    activity,
    open_app,
    publish,
    receive,
    sleep,
    subscribe,
    workflow,
)
from romancy_trio.demo import run_demo
from romancy_trio.storage import open_store

from ..conftest import with_search_path
from .conftest import Backend, fetch


@activity
async def portable_writes(ctx: ActivityContext) -> list[Any]:
    await ctx.db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, tag TEXT)")
    await ctx.db.execute("INSERT INTO notes (id, body, tag) VALUES (?, ?, ?)",
                         (1, "100% sure", "a"))
    await ctx.db.execute("INSERT INTO notes (id, body, tag) VALUES (:id, :body, :tag)",
                         {"id": 2, "body": "50% off", "tag": "b"})
    # a literal % next to parameters; a cast; a string holding '?' and ':x' (MySQL: '\\' opens
    # an escape in a literal, backslash is LIKE's escape already, and CAST knows CHAR, not TEXT)
    mysql = ctx.db.dialect == "mysql"
    escape, text = ("", "CHAR") if mysql else (" ESCAPE '\\'", "TEXT")
    rows = await ctx.db.fetchall(
        f"SELECT id, body, 'what? :x' FROM notes WHERE body LIKE '%\\% %'{escape} "
        f"AND CAST(id AS {text}) <> ? ORDER BY id", ("0",))
    one = await ctx.db.fetchone("SELECT body FROM notes WHERE tag = :tag AND id = :id",
                                {"tag": "b", "id": 2})
    like = await ctx.db.fetchall("SELECT id FROM notes WHERE body LIKE ? ORDER BY id", ("%off",))
    ph = "%s" if ctx.db.dialect in ("postgres", "mysql") else "?"
    native = await ctx.db.native.fetchone(f"SELECT count(*) FROM notes WHERE id > {ph}", (0,))
    return [[list(r) for r in rows], one and one[0], [r[0] for r in like], native and native[0]]


@activity(retry=RetryPolicy(max_attempts=1))
async def wrong_count(ctx: ActivityContext) -> None:
    await ctx.db.execute("SELECT ?, ?", (1,))


@workflow
async def portable(ctx: WorkflowContext) -> list[Any]:
    return await portable_writes(ctx)


@workflow
async def mistaken(ctx: WorkflowContext) -> str:
    try:
        await wrong_count(ctx)
    except ActivityFailedError as exc:
        return f"{exc.error_type}: {exc.message}"
    return "no error"


async def test_question_marks_and_names_work_on_every_backend(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[portable, portable_writes],
                        config=backend.config) as app:
        iid = await app.start(portable)
        assert await app.result(iid, timeout=30) == [
            [[1, "100% sure", "what? :x"], [2, "50% off", "what? :x"]], "50% off", [2], 2]
        assert await fetch(app, "SELECT tag FROM notes WHERE id = :id", {"id": 1}) == [("a",)]


async def test_a_placeholder_mistake_fails_the_activity_naming_it(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[mistaken, wrong_count],
                        config=backend.config) as app:
        iid = await app.start(mistaken)
        assert await app.result(iid, timeout=30) == (
            "romancy_trio.storage._placeholders.PlaceholderError: the statement has 2 '?' "
            "placeholder(s) but 1 value(s) were given")


# -- PostgreSQL: the user's search_path is the user's -----------------------------------------

@activity
async def user_tables(ctx: ActivityContext, n: int) -> str:
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS mine (n INTEGER)")
    await ctx.db.execute("INSERT INTO mine (n) VALUES (?)", (n,))
    await ctx.send_event("mine.added", {"n": n})  # the outbox: the library's schema
    row = await ctx.db.fetchone("SELECT current_setting('search_path')")
    assert row is not None
    return str(row[0])


@workflow
async def in_user_schema(ctx: WorkflowContext, channel: str) -> dict[str, Any]:
    path = await user_tables(ctx, 1)
    await subscribe(ctx, channel)
    await publish(ctx, channel, {"hello": 1})
    message = await receive(ctx, channel, timeout=30)
    await sleep(ctx, 0.05)
    await user_tables(ctx, 2)
    return {"search_path": path, "data": message.data}


@pytest.fixture
def user_schema(pg_dsn: str, pg_schema: str) -> Iterator[str]:
    """A schema of the application's own, next to the library's (dropped with the session's)."""
    name = f"{pg_schema}_user"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name


def _tables(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                            (schema,)).fetchall()
    return {r[0] for r in rows}


@pytest.mark.postgres
async def test_user_sql_lands_in_the_users_search_path(
        pg_dsn: str, pg_schema: str, user_schema: str, pg_backend: Backend) -> None:
    url = with_search_path(pg_dsn, user_schema)
    config = pg_backend.config  # its schema is pg_schema: the library's
    async with open_app(url, workflows=[in_user_schema, user_tables], config=config) as app:
        iid = await app.start(in_user_schema, "news")
        result = await app.result(iid, timeout=30)
    assert result == {"search_path": f"{user_schema}", "data": {"hello": 1}}
    with psycopg.connect(url) as conn:  # the application's own connection sees its rows
        assert conn.execute("SELECT n FROM mine ORDER BY n").fetchall() == [(1,), (2,)]
    library, users = _tables(pg_dsn, pg_schema), _tables(pg_dsn, user_schema)
    assert users == {"mine"}
    assert {"workflow_instances", "outbox_events", "channel_messages"} <= library
    assert "mine" not in library
    with psycopg.connect(pg_dsn) as conn:
        outbox = conn.execute(sql.SQL("SELECT type FROM {}.outbox_events ORDER BY seq").format(
            sql.Identifier(pg_schema))).fetchall()
    assert outbox == [("mine.added",), ("mine.added",)]


@pytest.mark.postgres
async def test_the_demo_completes_on_postgresql(
        pg_dsn: str, pg_schema: str, user_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_search_path(pg_dsn, user_schema)
    await run_demo(url, schema=pg_schema)
    await run_demo(url, schema=pg_schema)  # the second run finds the first one's result
    out = capsys.readouterr().out
    assert out.count("workflow order-A-1001: completed") == 2
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT * FROM demo_charges").fetchall() == [("A-1001", 4200)]


@pytest.mark.postgres
async def test_a_database_migrated_before_0005_moves_forward(pg_dsn: str, pg_schema: str) -> None:
    schema = sql.Identifier(pg_schema)
    async with open_store(pg_dsn, schema=pg_schema):
        pass
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # as an older version left it
        conn.execute(sql.SQL("ALTER FUNCTION {}.romancy_fenced_out(text, text, bigint) "
                             "RESET search_path").format(schema))
        conn.execute(sql.SQL("DELETE FROM {}.schema_migrations WHERE version = '0005'")
                     .format(schema))
    async with open_store(pg_dsn, schema=pg_schema):
        pass
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = 'romancy_fenced_out'", (pg_schema,)).fetchone()
    assert row == ([f"search_path={pg_schema}"],) or row == ([f'search_path="{pg_schema}"'],)


@pytest.mark.postgres
async def test_a_schema_name_with_a_percent_is_refused(pg_dsn: str) -> None:
    from romancy_trio import ConfigurationError

    with pytest.raises(ConfigurationError, match="schema name 'a%b'"):
        async with open_store(pg_dsn, schema="a%b"):
            pass


