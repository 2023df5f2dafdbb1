"""Direct messages (``target``): the target takes them exactly once, subscribed or not, in id
order with what else it receives; nobody else ever sees them."""

from __future__ import annotations

import pytest

from romancy_channels import ChannelMode

from ._helpers import drain, publish, subscribe, take
from .conftest import T0, Env

B = ChannelMode.BROADCAST
C = ChannelMode.COMPETING


async def test_a_target_that_never_subscribed_takes_only_its_direct_messages(env: Env) -> None:
    await publish(env, "inbox", "for everyone")
    await publish(env, "inbox", "one", target="me")
    await publish(env, "inbox", "not mine", target="you")
    await publish(env, "inbox", "two", target="me")
    async with env.tx() as tx:
        assert await env.engine.has_message_tx(tx, "inbox", "me")
    assert [(m.data, m.target) for m in await drain(env, "inbox", "me")] == [
        ("one", "me"), ("two", "me")]
    assert await take(env, "inbox", "me") is None  # exactly once
    async with env.tx() as tx:
        assert not await env.engine.has_message_tx(tx, "inbox", "me")
    assert [m.data for m in await drain(env, "inbox", "you")] == ["not mine"]


async def test_a_broadcast_subscriber_gets_direct_messages_in_id_order(env: Env) -> None:
    await publish(env, "c", "sent before it subscribed", target="s")
    await subscribe(env, "c", "s", B)
    await publish(env, "c", 1)
    await publish(env, "c", 2, target="s")
    await publish(env, "c", 3, target="other")
    await publish(env, "c", 4)
    got = [m.data for m in await drain(env, "c", "s")]
    assert got == ["sent before it subscribed", 1, 2, 4]
    # unsubscribing does not make a direct message it already took come back
    async with env.tx() as tx:
        assert await env.engine.unsubscribe_tx(tx, "c", "s")
    assert await take(env, "c", "s") is None
    await publish(env, "c", 5, target="s")
    assert [m.data for m in await drain(env, "c", "s")] == [5]


async def test_a_competing_subscriber_gets_its_direct_messages_once(env: Env) -> None:
    await subscribe(env, "q", "a", C)
    await subscribe(env, "q", "b", C)
    await publish(env, "q", "for a", target="a")
    await publish(env, "q", "anyone")
    assert [m.data for m in await drain(env, "q", "b")] == ["anyone"]
    assert [m.data for m in await drain(env, "q", "a")] == ["for a"]


async def test_a_rolled_back_take_gives_the_direct_message_back(env: Env) -> None:
    await publish(env, "c", "x", target="me")
    with pytest.raises(ZeroDivisionError):
        async with env.tx() as tx:
            assert await env.engine.take_next_tx(tx, "c", "me", now=T0) is not None
            1 / 0  # noqa: B018 - roll the transaction back
    assert [m.data for m in await drain(env, "c", "me")] == ["x"]
