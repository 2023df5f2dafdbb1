"""Broadcast channels: every subscriber gets every later message, in order, exactly once."""

from __future__ import annotations

import pytest
import trio

from romancy_channels import ChannelMode, Message

from ._helpers import backend_pid, drain, publish, publish_many, subscribe, take, until_blocked_by
from .conftest import T0, Env

B = ChannelMode.BROADCAST


class Rollback(Exception):
    pass


async def test_five_subscribers_each_get_all_500_in_order_while_publishing(env: Env) -> None:
    subscribers = [f"s{i}" for i in range(5)]
    for s in subscribers:
        await subscribe(env, "news", s, B)
    got: dict[str, list[Message]] = {s: [] for s in subscribers}
    ids: list[int] = []

    async def publisher() -> None:
        ids.extend(await publish_many(env, "news", range(500), per_tx=25))

    async def reader(s: str) -> None:
        while len(got[s]) < 500:
            message = await take(env, "news", s)
            if message is None:
                await trio.sleep(0.001)
            else:
                got[s].append(message)

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            for s in subscribers:
                nursery.start_soon(reader, s)
    for s in subscribers:
        assert [m.data for m in got[s]] == [{"n": n} for n in range(500)]
        assert [m.id for m in got[s]] == ids
        assert await take(env, "news", s) is None  # exactly once: nothing left over


async def test_a_new_subscriber_sees_only_messages_published_after_it(env: Env) -> None:
    await subscribe(env, "c", "early", B)
    await publish(env, "c", "before")
    await subscribe(env, "c", "late", B)
    await publish(env, "c", "after")
    assert [m.data for m in await drain(env, "c", "early")] == ["before", "after"]
    assert [m.data for m in await drain(env, "c", "late")] == ["after"]


async def test_subscribing_again_keeps_the_position(env: Env) -> None:
    await subscribe(env, "c", "s", B)
    await publish(env, "c", 1)
    await publish(env, "c", 2)
    assert (await take(env, "c", "s") or pytest.fail()).data == 1
    await subscribe(env, "c", "s", B)  # idempotent: no reset, no skip
    assert [m.data for m in await drain(env, "c", "s")] == [2]


async def test_targeted_message_reaches_only_its_target(env: Env) -> None:
    for s in ("a", "b"):
        await subscribe(env, "c", s, B)
    await publish(env, "c", 1)
    await publish(env, "c", 2, target="b")
    await publish(env, "c", 3)
    a = await drain(env, "c", "a")
    b = await drain(env, "c", "b")
    assert [m.data for m in a] == [1, 3]
    assert [(m.data, m.target) for m in b] == [(1, None), (2, "b"), (3, None)]


async def test_unsubscribe_stops_delivery(env: Env) -> None:
    await subscribe(env, "c", "s", B)
    await publish(env, "c", 1)
    async with env.tx() as tx:
        assert await env.engine.unsubscribe_tx(tx, "c", "s") is True
        assert await env.engine.unsubscribe_tx(tx, "c", "s") is False
    await publish(env, "c", "after")
    assert await take(env, "c", "s") is None  # nothing untargeted reaches it any more
    await subscribe(env, "c", "s", B)  # a fresh subscription starts at the end
    await publish(env, "c", 2)
    assert [m.data for m in await drain(env, "c", "s")] == [2]


async def test_rollback_of_the_callers_transaction_unconsumes(env: Env) -> None:
    await subscribe(env, "c", "s", B)
    await publish(env, "c", 1)
    await publish(env, "c", 2)
    with pytest.raises(Rollback):
        async with env.tx() as tx:
            first = await env.engine.take_next_tx(tx, "c", "s")
            second = await env.engine.take_next_tx(tx, "c", "s")
            assert (first and first.data, second and second.data) == (1, 2)
            raise Rollback
    assert [m.data for m in await drain(env, "c", "s")] == [1, 2]


async def test_messages_of_other_channels_are_not_delivered(env: Env) -> None:
    await subscribe(env, "c1", "s", B)
    await subscribe(env, "c2", "s", B)
    await publish(env, "c1", "one")
    await publish(env, "c2", "two")
    assert [m.data for m in await drain(env, "c1", "s")] == ["one"]
    assert [m.channel for m in await drain(env, "c2", "s")] == ["c2"]


@pytest.mark.postgres
async def test_a_cursor_never_skips_a_message_that_commits_later(pg_env: Env) -> None:
    """Publisher A draws its id and commits late; publisher B, later, must not overtake it."""
    env = pg_env
    await subscribe(env, "c", "s", B)
    a_published, a_release, b_done = trio.Event(), trio.Event(), trio.Event()
    order: list[str] = []
    pids: list[int] = []

    async def publisher_a() -> None:
        async with env.tx() as tx:
            pids.append(await backend_pid(tx))
            await env.engine.publish_tx(tx, "c", '"a"', now=T0)
            a_published.set()
            await a_release.wait()
            order.append("a commits")

    async def publisher_b() -> None:
        await a_published.wait()
        async with env.tx() as tx:
            await env.engine.publish_tx(tx, "c", '"b"', now=T0)  # waits for A's commit
            order.append("b published")
        b_done.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher_a)
            nursery.start_soon(publisher_b)
            await a_published.wait()
            await until_blocked_by(env, pids[0])  # B waits for A's channel lock
            assert not b_done.is_set()
            assert await take(env, "c", "s") is None  # A is uncommitted; nothing to skip past
            a_release.set()
            await b_done.wait()
    assert order == ["a commits", "b published"]
    taken = await drain(env, "c", "s")
    assert [m.data for m in taken] == ["a", "b"]
    assert taken[0].id < taken[1].id


@pytest.mark.postgres
async def test_subscribe_waits_for_in_flight_publishers(pg_env: Env) -> None:
    """A subscription that overlaps an open publish starts after it: nothing half-seen."""
    env = pg_env
    await publish(env, "c", "old")
    published, release = trio.Event(), trio.Event()
    pids: list[int] = []

    async def publisher() -> None:
        async with env.tx() as tx:
            pids.append(await backend_pid(tx))
            await env.engine.publish_tx(tx, "c", '"in flight"', now=T0)
            published.set()
            await release.wait()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            await published.wait()
            nursery.start_soon(subscribe, env, "c", "s", B)
            await until_blocked_by(env, pids[0])  # the subscription waits for the publish
            release.set()
    await publish(env, "c", "new")
    assert [m.data for m in await drain(env, "c", "s")] == ["new"]
