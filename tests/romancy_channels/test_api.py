"""The public surface: validation, the message format, read_after, NOTIFY, migrations."""

from __future__ import annotations

import json
from collections.abc import Sequence

import psycopg
import pytest
import trio

import romancy_channels
from romancy_channels import (
    NOTIFY_TOPIC,
    ChannelEngine,
    ChannelError,
    ChannelMode,
    ChannelModeError,
    Message,
)
from romancy_trio.storage._postgres import PostgresDatabase

from ._helpers import drain, publish, subscribe
from .conftest import T0, Env, migrate_postgres

B = ChannelMode.BROADCAST


def test_public_surface() -> None:
    assert sorted(romancy_channels.__all__) == sorted(
        [
            "MAX_NAME_LENGTH",
            "NOTIFY_TOPIC",
            "SCHEMA_TOKEN",
            "ChannelEngine",
            "ChannelError",
            "ChannelMode",
            "ChannelModeError",
            "ChannelTx",
            "Message",
            "migrations",
            "qualify",
            "quote_identifier",
            "quote_mysql_identifier",
            "quote_schema",
        ]
    )
    assert issubclass(ChannelError, ValueError)
    assert issubclass(ChannelModeError, ChannelError)
    # a direct message needs no subscription, so nothing reads "not subscribed" as an error
    assert not hasattr(romancy_channels, "NotSubscribedError")
    assert NOTIFY_TOPIC == "romancy_channel"


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="oracle"):
        ChannelEngine("oracle")
    with pytest.raises(ValueError, match="oracle"):
        romancy_channels.migrations("oracle")


def test_migrations_are_numbered_up_sections() -> None:
    for dialect in ("postgres", "sqlite"):
        found = romancy_channels.migrations(dialect)
        assert [version for version, _ in found] == ["0001", "0002"]
        up = found[0][1]
        assert "CREATE TABLE IF NOT EXISTS channel_messages" in up
        assert "migrate:" not in up and "DROP TABLE" not in up


@pytest.mark.postgres
async def test_migrations_can_be_applied_twice(pg_env: Env) -> None:
    assert isinstance(pg_env.db, PostgresDatabase)
    await migrate_postgres(pg_env.db)  # every statement is IF NOT EXISTS
    await subscribe(pg_env, "c", "s", B)


def test_message_json_format() -> None:
    message = Message(
        id=7,
        channel="c",
        data={"x": [1, None]},
        metadata={"k": "v"},
        target=None,
        published_at=1_700_000_000.25,
    )
    assert message.to_json() == {
        "id": 7,
        "channel": "c",
        "data": {"x": [1, None]},
        "metadata": {"k": "v"},
        "target": None,
        "published_at": "2023-11-14T22:13:20.250000Z",
    }
    json.dumps(message.to_json())  # serialisable as it is


async def test_a_message_round_trips(env: Env) -> None:
    await subscribe(env, "c", "s", B)
    data = '{"text": "nul \\u0000 and \\u00e9 and \\ud83d\\ude00", "n": 1.5}'
    async with env.tx() as tx:
        mid = await env.engine.publish_tx(
            tx, "c", data, metadata_json='{"trace": "t-1"}', target="s", now=T0
        )
    [message] = await drain(env, "c", "s")
    assert message == Message(
        id=mid,
        channel="c",
        data={"text": "nul \x00 and \u00e9 and \U0001f600", "n": 1.5},
        metadata={"trace": "t-1"},
        target="s",
        published_at=T0,
    )


BAD_NAMES: Sequence[object] = ["", "x" * 201, "a\x00b", "tab\there", "del\x7f", "\ud800", 5, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_bad_names_are_rejected(env: Env, name: object) -> None:
    engine = env.engine
    async with env.tx() as tx:
        with pytest.raises(ChannelError):
            await engine.publish_tx(tx, name, "1", now=T0)  # type: ignore[arg-type]
        with pytest.raises(ChannelError):
            await engine.subscribe_tx(tx, "c", name, B, now=T0)  # type: ignore[arg-type]
        if name is not None:  # no target is fine
            with pytest.raises(ChannelError):
                await engine.publish_tx(tx, "c", "1", target=name, now=T0)  # type: ignore[arg-type]
        with pytest.raises(ChannelError):
            await engine.take_next_tx(tx, name, "s")  # type: ignore[arg-type]


async def test_names_at_the_limit_are_fine(env: Env) -> None:
    long = "é" * romancy_channels.MAX_NAME_LENGTH
    await subscribe(env, long, long, B)
    await publish(env, long, "hi")
    assert [m.channel for m in await drain(env, long, long)] == [long]


@pytest.mark.parametrize(
    ("data", "metadata", "match"),
    [
        ('"a\x00b"', "{}", "NUL"),
        ("{", "{}", "not valid JSON"),
        ("", "{}", "not valid JSON"),
        ('"\ud800"', "{}", "UTF-8"),
        ("1", "[]", "metadata must be a JSON object"),
        ("1", '{"a": "\x00"}', "NUL"),
        (b"1", "{}", "str"),
    ],
)
async def test_bad_payloads_are_rejected(env: Env, data: object, metadata: str, match: str) -> None:
    async with env.tx() as tx:
        with pytest.raises(ChannelError, match=match):
            await env.engine.publish_tx(
                tx,
                "c",
                data,  # type: ignore[arg-type]
                metadata_json=metadata,
                now=T0,
            )


async def test_other_bad_arguments(env: Env) -> None:
    async with env.tx() as tx:
        with pytest.raises(ChannelError, match="mode"):
            await env.engine.subscribe_tx(tx, "c", "s", "fanout", now=T0)  # type: ignore[arg-type]
        with pytest.raises(ChannelError, match="now"):
            await env.engine.publish_tx(tx, "c", "1", now=float("inf"))
        with pytest.raises(ChannelError, match="limit"):
            await env.engine.read_after_tx(tx, "c", 0, 0)
        with pytest.raises(ChannelError, match="after_id"):
            await env.engine.read_after_tx(tx, "c", "0", 10)  # type: ignore[arg-type]
    # a mode given as its string value is accepted
    async with env.tx() as tx:
        await env.engine.subscribe_tx(tx, "c", "s", "broadcast", now=T0)  # type: ignore[arg-type]
        assert await env.engine.subscribers_tx(tx, "c") == [("s", B)]


async def test_read_after_is_a_view_of_untargeted_messages(env: Env) -> None:
    await subscribe(env, "c", "s", ChannelMode.COMPETING)
    ids = [await publish(env, "c", n) for n in range(3)]
    await publish(env, "c", "private", target="s")
    ids.append(await publish(env, "c", 3))
    await publish(env, "other", "x")
    async with env.tx() as tx:
        assert await env.engine.take_next_tx(tx, "c", "s")  # claims do not hide messages
        everything = await env.engine.read_after_tx(tx, "c", 0, 100)
        page = await env.engine.read_after_tx(tx, "c", ids[0], 2)
        assert await env.engine.read_after_tx(tx, "c", ids[-1], 100) == []
    assert [m.id for m in everything] == ids
    assert [m.data for m in everything] == [0, 1, 2, 3]
    assert [m.data for m in page] == [1, 2]


async def test_publish_notifies_on_commit_only(env: Env) -> None:
    seen: list[tuple[str, str]] = []
    env.db.set_after_commit(lambda notes: seen.extend(notes))
    with pytest.raises(RuntimeError):
        async with env.tx() as tx:
            await env.engine.publish_tx(tx, "c1", "1", now=T0)
            raise RuntimeError
    assert seen == []
    async with env.tx() as tx:
        await env.engine.publish_tx(tx, "c1", "1", now=T0)
        await env.engine.publish_tx(tx, "c1", "2", now=T0)
        await env.engine.publish_tx(tx, "c2", "3", now=T0)
    assert seen == [(NOTIFY_TOPIC, "c1"), (NOTIFY_TOPIC, "c2")]


@pytest.mark.postgres
async def test_postgres_sends_the_notify_itself(pg_env: Env, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_TOPIC}")
        await publish(pg_env, "orders", 1)

        def first() -> tuple[str, str]:
            for note in listener.notifies(timeout=10, stop_after=1):
                return note.channel, note.payload
            raise AssertionError("no notification")

        assert await trio.to_thread.run_sync(first) == (NOTIFY_TOPIC, "orders")


def test_quote_schema_quotes_per_dialect_and_names_an_unknown_one() -> None:
    from romancy_channels import quote_schema

    assert quote_schema('we"ird', "postgres") == '"we""ird"'
    assert quote_schema("main", "sqlite") == '"main"'
    assert quote_schema("app", "mysql") == "`app`"
    with pytest.raises(ValueError, match="unknown SQL dialect 'oracle'"):
        quote_schema("app", "oracle")
