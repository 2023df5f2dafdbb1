"""Competing channels: each message goes to exactly one subscriber."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from romancy_channels import ChannelMode, ChannelModeError, Message

from ._helpers import backend_pid, drain, publish, publish_many, subscribe, take, until_blocked_by
from .conftest import T0, Env

C = ChannelMode.COMPETING
B = ChannelMode.BROADCAST


class Rollback(Exception):
    pass


async def test_2000_messages_4_concurrent_takers_each_message_exactly_once(env: Env) -> None:
    takers = [f"w{i}" for i in range(4)]
    for w in takers:
        await subscribe(env, "jobs", w, C)
    ids = await publish_many(env, "jobs", range(2000), per_tx=200)
    got: dict[str, list[Message]] = {w: [] for w in takers}

    async def worker(w: str) -> None:
        while (message := await take(env, "jobs", w)) is not None:
            got[w].append(message)
            await trio.lowlevel.checkpoint()  # let the others interleave

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for w in takers:
                nursery.start_soon(worker, w)
    taken = [m.id for w in takers for m in got[w]]
    assert len(taken) == 2000
    assert sorted(taken) == ids
    assert sum(1 for w in takers if got[w]) >= 2  # really concurrent
    for w in takers:  # each taker sees the queue in order
        assert [m.id for m in got[w]] == sorted(m.id for m in got[w])
    async with env.tx() as tx:
        rows = await tx.fetchall("SELECT id, claimed_by FROM channel_messages")
    assert {i: by for i, by in rows} == {m.id: w for w in takers for m in got[w]}


async def test_messages_published_before_any_subscriber_wait_in_the_queue(env: Env) -> None:
    await publish(env, "q", 1)
    await subscribe(env, "q", "w", C)
    await publish(env, "q", 2)
    assert [m.data for m in await drain(env, "q", "w")] == [1, 2]


async def test_targeted_message_goes_only_to_its_target(env: Env) -> None:
    for w in ("a", "b"):
        await subscribe(env, "q", w, C)
    await publish(env, "q", "for b", target="b")
    await publish(env, "q", "anyone")
    a = await drain(env, "q", "a")
    assert [m.data for m in a] == ["anyone"]
    b = await drain(env, "q", "b")
    assert [(m.data, m.target) for m in b] == [("for b", "b")]


async def test_rollback_leaves_the_message_unclaimed(env: Env) -> None:
    for w in ("a", "b"):
        await subscribe(env, "q", w, C)
    await publish(env, "q", "only")
    with pytest.raises(Rollback):
        async with env.tx() as tx:
            message = await env.engine.take_next_tx(tx, "q", "a")
            assert message is not None and message.data == "only"
            raise Rollback
    message = await take(env, "q", "b")
    assert message is not None and message.data == "only"
    assert await take(env, "q", "a") is None


async def test_unsubscribe_stops_delivery(env: Env) -> None:
    await subscribe(env, "q", "w", C)
    await publish(env, "q", 1)
    async with env.tx() as tx:
        assert await env.engine.unsubscribe_tx(tx, "q", "w")
    assert await take(env, "q", "w") is None  # the queue is not its own any more
    async with env.tx() as tx:
        assert not await env.engine.has_message_tx(tx, "q", "w")


async def test_the_first_subscription_locks_the_mode(env: Env) -> None:
    await publish(env, "c", "publishing does not lock")
    await subscribe(env, "c", "a", B)
    await subscribe(env, "c", "a", B)  # idempotent
    with pytest.raises(ChannelModeError) as info:
        await subscribe(env, "c", "b", C)
    err = info.value
    assert (err.channel, err.locked, err.requested) == ("c", B, C)
    assert "'c'" in str(err) and "broadcast" in str(err) and "competing" in str(err)
    async with env.tx() as tx:
        assert await env.engine.subscribers_tx(tx, "c") == [("a", B)]
        await env.engine.unsubscribe_tx(tx, "c", "a")
    with pytest.raises(ChannelModeError):  # the lock outlives the subscribers
        await subscribe(env, "c", "b", C)
    async with env.tx() as tx:
        assert await env.engine.subscribers_tx(tx, "c") == []


async def test_subscribers_and_has_message(env: Env) -> None:
    for w in ("b", "a"):
        await subscribe(env, "q", w, C)
    await subscribe(env, "n", "x", B)
    async with env.tx() as tx:
        assert await env.engine.subscribers_tx(tx, "q") == [("a", C), ("b", C)]
        assert await env.engine.subscribers_tx(tx, "nobody") == []
        assert not await env.engine.has_message_tx(tx, "q", "a")
        assert not await env.engine.has_message_tx(tx, "n", "x")
    await publish(env, "q", 1, target="b")
    await publish(env, "n", 1)
    async with env.tx() as tx:
        assert not await env.engine.has_message_tx(tx, "q", "a")  # targeted at b
        assert await env.engine.has_message_tx(tx, "q", "b")
        assert await env.engine.has_message_tx(tx, "n", "x")
    await drain(env, "q", "b")
    await drain(env, "n", "x")
    async with env.tx() as tx:
        assert not await env.engine.has_message_tx(tx, "q", "b")
        assert not await env.engine.has_message_tx(tx, "n", "x")


async def test_has_message_leaves_messages_to_subscribers_already_woken(env: Env) -> None:
    """``woken`` (an SQL count of other subscribers on their way to take) leaves that many
    untargeted competing messages to them; a message targeted at the asker, or a broadcast
    one, stays the asker's whatever the count."""
    await subscribe(env, "q", "a", C)
    await subscribe(env, "n", "x", B)
    await publish(env, "q", 1)
    await publish(env, "q", 2)
    await publish(env, "n", 1)

    async def has(channel: str, subscriber: str, woken: str) -> bool:
        query, args = env.engine.has_message_statement(channel, subscriber, woken=woken)
        async with env.tx() as tx:
            return env.engine.has_message(channel, subscriber, await tx.fetchall(query, args))

    assert await has("q", "a", "0") and await has("q", "a", "1")
    assert not await has("q", "a", "2")  # two woken subscribers take both messages
    assert not await has("q", "a", "(SELECT 1 + 1)")  # any SQL expression
    await publish(env, "q", 3, target="a")
    assert await has("q", "a", "5")  # only "a" can take a message sent to it
    assert await has("n", "x", "5")  # a broadcast cursor is the subscriber's alone
    assert not await has("q", "nobody", "0")  # not subscribed: only its direct messages
    await publish(env, "q", 4, target="nobody")
    assert await has("q", "nobody", "5")


@pytest.mark.postgres
async def test_competing_publishers_do_not_wait_for_each_other(pg_env: Env) -> None:
    """A competing channel needs no commit order, so its publishes take no channel lock: a
    publish commits while another publishing transaction is still open. A broadcast
    channel's publishes wait (their ids must follow commit order)."""
    await subscribe(pg_env, "work", "w", C)
    await subscribe(pg_env, "news", "r", B)
    for channel, mode, waits in (("work", C, False), ("news", B, True)):
        async with pg_env.tx() as open_tx:
            (query, args), = pg_env.engine.publish_statements(channel, ["1"], now=T0, mode=mode)
            await open_tx.fetchall(query, args)
            # one that waits is seen blocked for a second; one that does not commits (within
            # a generous bound: a loaded machine can take more than a second to)
            with trio.move_on_after(1.0) if waits else trio.fail_after(20) as bound:
                async with pg_env.tx() as tx:
                    (query, args), = pg_env.engine.publish_statements(
                        channel, ["2"], now=T0, mode=mode)
                    await tx.fetchall(query, args)
            assert bound.cancelled_caught is waits, channel
    assert await pg_env.scalar("SELECT count(*) FROM channel_messages") == 3


@pytest.mark.postgres
async def test_an_open_claim_is_skipped_not_waited_for(pg_env: Env) -> None:
    env = pg_env
    for w in ("a", "b", "c"):
        await subscribe(env, "q", w, C)
    ids = await publish_many(env, "q", range(2))
    holding, release = trio.Event(), trio.Event()

    async def holder() -> None:
        with pytest.raises(Rollback):
            async with env.tx() as tx:
                message = await env.engine.take_next_tx(tx, "q", "a")
                assert message is not None and message.id == ids[0]
                holding.set()
                await release.wait()
                raise Rollback

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await holding.wait()
            second = await take(env, "q", "b")  # does not block on a's lock
            assert second is not None and second.id == ids[1]
            assert await take(env, "q", "b") is None
            release.set()
    first = await take(env, "q", "c")  # a rolled back: the message is free again
    assert first is not None and first.id == ids[0]


async def test_claimed_at_defaults_to_the_clock_and_can_be_given(env: Env) -> None:
    await subscribe(env, "q", "w", C)
    await publish_many(env, "q", range(2))
    async with env.tx() as tx:
        assert await env.engine.take_next_tx(tx, "q", "w", now=T0 + 5)
        assert await env.engine.take_next_tx(tx, "q", "w")
        rows = await tx.fetchall("SELECT claimed_at FROM channel_messages ORDER BY id")
    assert rows[0][0] == T0 + 5
    assert rows[1][0] > T0 + 5
    assert Counter(type(r[0]) for r in rows) == {float: 2}


@pytest.mark.postgres
async def test_racing_first_subscriptions_lock_one_mode(pg_env: Env) -> None:
    """Two first subscriptions in different modes at once: the first to commit wins."""
    env = pg_env
    subscribed, release = trio.Event(), trio.Event()
    outcome: list[str] = []
    pids: list[int] = []

    async def first() -> None:
        async with env.tx() as tx:
            pids.append(await backend_pid(tx))
            await env.engine.subscribe_tx(tx, "c", "a", B, now=T0)
            subscribed.set()
            await release.wait()
            # noted before COMMIT: once the server commits, the second's answer may reach
            # this process before the first's does
            outcome.append("a commits")

    async def second() -> None:
        await subscribed.wait()
        with pytest.raises(ChannelModeError):
            await subscribe(env, "c", "b", C)  # waits for the first, then sees its mode
        outcome.append("b refused")

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(second)
            await subscribed.wait()
            await until_blocked_by(env, pids[0])  # the second waits for the first
            assert outcome == []
            release.set()
    assert outcome == ["a commits", "b refused"]
    async with env.tx() as tx:
        assert await env.engine.subscribers_tx(tx, "c") == [("a", B)]
