"""publish_many_tx: several messages in one statement (PostgreSQL) keep publish's guarantees."""

from __future__ import annotations

import json

import pytest
import trio

from romancy_channels import ChannelError, ChannelMode, Message

from ._helpers import drain, subscribe, take
from .conftest import T0, Env


def _items(tag: str, n: int) -> list[str]:
    return [json.dumps({"tag": tag, "k": k}) for k in range(n)]


async def test_ids_follow_the_given_order_and_readers_see_that_order(env: Env) -> None:
    await subscribe(env, "q", "b", ChannelMode.BROADCAST)
    items = _items("one", 300) + [json.dumps({"same": 1})] * 3
    async with env.tx() as tx:
        ids = await env.engine.publish_many_tx(tx, "q", items, now=T0)
    assert ids == sorted(ids) and len(set(ids)) == len(items)
    got = await drain(env, "q", "b")
    assert [m.id for m in got] == ids
    assert [json.dumps(m.data) for m in got] == items


async def test_concurrent_batches_never_let_a_cursor_skip_a_message(env: Env) -> None:
    """Four publishers of 10 batches of 40 race a broadcast reader: every message arrives once,
    in id order, and each batch is contiguous and in its own order."""
    await subscribe(env, "news", "r", ChannelMode.BROADCAST)
    total = 4 * 10 * 40
    got: list[Message] = []

    async def publisher(p: int) -> None:
        for b in range(10):
            async with env.tx() as tx:
                await env.engine.publish_many_tx(tx, "news", _items(f"{p}-{b}", 40), now=T0)

    async def reader() -> None:
        while len(got) < total:
            message = await take(env, "news", "r")
            if message is None:
                await trio.sleep(0.001)
            else:
                got.append(message)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for p in range(4):
                nursery.start_soon(publisher, p)
    ids = [m.id for m in got]
    assert ids == sorted(ids) and len(set(ids)) == total
    tags = [m.data["tag"] for m in got]
    for tag in set(tags):
        first = tags.index(tag)
        assert tags[first : first + 40] == [tag] * 40
        assert [m.data["k"] for m in got[first : first + 40]] == list(range(40))


async def test_a_bad_item_stores_nothing(env: Env) -> None:
    with pytest.raises(ChannelError, match="data is not valid JSON"):
        async with env.tx() as tx:
            await env.engine.publish_many_tx(tx, "q", ['{"ok": 1}', "{nope"], now=T0)
    assert await env.scalar("SELECT count(*) FROM channel_messages") == 0


async def test_competing_takers_get_each_batched_message_once(env: Env) -> None:
    for s in ("a", "b"):
        await subscribe(env, "jobs", s, ChannelMode.COMPETING)
    async with env.tx() as tx:
        ids = await env.engine.publish_many_tx(tx, "jobs", _items("j", 50), now=T0)
    taken: list[int] = []
    for turn in range(60):
        message = await take(env, "jobs", "ab"[turn % 2])
        if message is not None:
            taken.append(message.id)
    assert taken == ids
