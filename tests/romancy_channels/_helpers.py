"""Small drivers for the channel tests: publish in batches, drain a subscriber."""

from __future__ import annotations

import json

import trio

from romancy_channels import ChannelMode, ChannelTx, Message

from .conftest import T0, Env


async def subscribe(env: Env, channel: str, subscriber: str, mode: ChannelMode) -> None:
    async with env.tx() as tx:
        await env.engine.subscribe_tx(tx, channel, subscriber, mode, now=T0)


async def publish(
    env: Env, channel: str, data: object, *, target: str | None = None, now: float = T0
) -> int:
    async with env.tx() as tx:
        return await env.engine.publish_tx(tx, channel, json.dumps(data), target=target, now=now)


async def publish_many(
    env: Env, channel: str, values: range, *, per_tx: int = 50, now: float = T0
) -> list[int]:
    """Publish ``{"n": v}`` for each value, ``per_tx`` per transaction; the ids in order."""
    ids: list[int] = []
    items = list(values)
    for start in range(0, len(items), per_tx):
        async with env.tx() as tx:
            for v in items[start : start + per_tx]:
                data = json.dumps({"n": v})
                ids.append(await env.engine.publish_tx(tx, channel, data, now=now))
    return ids


async def take(env: Env, channel: str, subscriber: str) -> Message | None:
    async with env.tx() as tx:
        return await env.engine.take_next_tx(tx, channel, subscriber)


async def drain(env: Env, channel: str, subscriber: str) -> list[Message]:
    """Take until nothing is left, one transaction per message."""
    out: list[Message] = []
    while (message := await take(env, channel, subscriber)) is not None:
        out.append(message)
    return out


async def backend_pid(tx: ChannelTx) -> int:
    """The PostgreSQL backend that runs this transaction."""
    row = await tx.fetchone("SELECT pg_backend_pid()")
    assert row is not None
    return int(row[0])


async def until_blocked_by(env: Env, pid: int) -> None:
    """Until another session waits for a lock the PostgreSQL backend ``pid`` holds."""
    query = f"SELECT count(*) FROM pg_stat_activity WHERE {int(pid)} = ANY(pg_blocking_pids(pid))"
    with trio.fail_after(20):
        while not await env.scalar(query):
            await trio.sleep(0.01)
