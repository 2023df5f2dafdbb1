"""Retention: cleanup deletes exactly the messages nobody can still receive, in bounded batches."""

from __future__ import annotations

import pytest

from romancy_channels import ChannelError, ChannelMode

from ._helpers import drain, publish, subscribe
from .conftest import T0, Env

B = ChannelMode.BROADCAST
C = ChannelMode.COMPETING


async def remaining(env: Env) -> set[object]:
    async with env.tx() as tx:
        rows = await tx.fetchall("SELECT data FROM channel_messages")
    return {row[0] for row in rows}


async def cleanup(env: Env, *, now: float, retention: float, batch: int = 1000) -> int:
    async with env.tx() as tx:
        return await env.engine.cleanup_tx(tx, now=now, retention=retention, batch=batch)


async def claim(env: Env, channel: str, subscriber: str, at: float) -> None:
    async with env.tx() as tx:
        assert await env.engine.take_next_tx(tx, channel, subscriber, now=at) is not None


async def scenario(env: Env) -> None:
    """Messages published at T0 unless said otherwise; cleanup runs with cutoff T0 + 50."""
    # competing: q1 claimed long ago, q2 claimed recently, q3 waiting, q4 for an absentee
    await subscribe(env, "q", "w", C)
    for name in ("q1", "q2", "q3"):
        await publish(env, "q", name)
    await publish(env, "q", "q4", target="ghost")
    await claim(env, "q", "w", T0 + 10)
    await claim(env, "q", "w", T0 + 100)
    # broadcast: a read everything, b only b1; b4 is a's alone; b5 is recent
    await subscribe(env, "b", "a", B)
    await subscribe(env, "b", "b", B)
    for name in ("b1", "b2", "b3"):
        await publish(env, "b", name)
    await publish(env, "b", "b4", target="a")
    await publish(env, "b", "b5", now=T0 + 60)
    for _ in range(5):  # its direct message b4 is claimed when taken (at T0 + 10)
        await claim(env, "b", "a", T0 + 10)
    assert await drain(env, "b", "a") == []
    async with env.tx() as tx:
        assert await env.engine.take_next_tx(tx, "b", "b") is not None
    # no subscribers at all: l1 is old, l2 recent
    await publish(env, "lonely", "l1")
    await publish(env, "lonely", "l2", now=T0 + 500)


DELETED = {'"q1"', '"q4"', '"b1"', '"b4"', '"l1"'}
KEPT = {'"q2"', '"q3"', '"b2"', '"b3"', '"b5"', '"l2"'}


async def test_cleanup_deletes_what_nobody_can_receive_and_nothing_else(env: Env) -> None:
    await scenario(env)
    assert await remaining(env) == DELETED | KEPT
    assert await cleanup(env, now=T0 + 150, retention=100) == len(DELETED)
    assert await remaining(env) == KEPT
    assert await cleanup(env, now=T0 + 150, retention=100) == 0
    # what was kept is still delivered
    assert [m.data for m in await drain(env, "b", "b")] == ["b2", "b3", "b5"]
    assert [m.data for m in await drain(env, "q", "w")] == ["q3"]


async def test_cleanup_is_bounded_by_batch(env: Env) -> None:
    await scenario(env)
    counts = [await cleanup(env, now=T0 + 150, retention=100, batch=2) for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    assert await remaining(env) == KEPT


async def test_unsubscribing_releases_what_only_that_subscriber_held(env: Env) -> None:
    await scenario(env)
    async with env.tx() as tx:
        await env.engine.unsubscribe_tx(tx, "b", "b")
    await cleanup(env, now=T0 + 150, retention=100)
    assert await remaining(env) == KEPT - {'"b2"', '"b3"'}


async def test_nothing_younger_than_the_retention_is_deleted(env: Env) -> None:
    await scenario(env)
    assert await cleanup(env, now=T0 + 150, retention=1000) == 0
    assert await remaining(env) == DELETED | KEPT


async def test_cleanup_arguments_are_checked(env: Env) -> None:
    async with env.tx() as tx:
        with pytest.raises(ChannelError, match="retention"):
            await env.engine.cleanup_tx(tx, now=T0, retention=-1)
        with pytest.raises(ChannelError, match="batch"):
            await env.engine.cleanup_tx(tx, now=T0, retention=1, batch=0)
        with pytest.raises(ChannelError, match="now"):
            await env.engine.cleanup_tx(tx, now=float("nan"), retention=1)
