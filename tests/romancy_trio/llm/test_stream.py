"""llm.stream: the answer's text reaches a trio-websocket client of the channel feed (served by
hypercorn) token by token while the model is still answering; the recorded text is their
concatenation; replay publishes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio

from romancy_trio import (
    Event,
    WorkflowContext,
    WorkflowStatus,
    llm,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio.asgi import serve_http
from romancy_trio.client import ChannelMessage, subscribe

from ..conftest import Backend
from ._support import until_status
from .conftest import KEYS, base_url
from .fake_provider import FakeProvider, Reply

PROVIDERS = ["openai", "openai_responses", "anthropic", "gemini"]
TOKENS = ["Once ", "upon ", "a ", "time, ", "a ", "workflow ", "survived."]


@workflow
async def storyteller(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    story = await llm.stream(ctx, "Tell a story.", channel="story", provider=provider)
    await wait_event(ctx, "llm.go")  # suspends: the rest runs after a replay
    return {"text": story.text, "call_id": story.call_id,
            "tokens": story.usage.input_tokens + story.usage.output_tokens}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tokens_reach_a_websocket_client_as_they_arrive(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    seen = [trio.Event() for _ in TOKENS]
    received: list[ChannelMessage] = []

    async def after_client_saw_previous(n: int) -> None:
        if n > 0:  # token n is sent only once the client has token n-1: truly streamed
            with trio.fail_after(30):
                await seen[n - 1].wait()

    fake.script = lambda p, body: Reply(tokens=TOKENS, before_token=after_client_saw_previous)
    async with (open_app(backend.url, config=backend.config, workflows=[storyteller]) as app,
                trio.open_nursery() as nursery):
        llm.set_app_defaults(app, model="story-model", api_keys=KEYS,
                             base_urls={p: base_url(fake, p) for p in PROVIDERS})
        port = await nursery.start(serve_http, app)
        async with subscribe(f"ws://127.0.0.1:{port}/channels/ws", ["story"]) as feed:
            iid = await app.start(storyteller, provider)
            with trio.fail_after(60):
                async for message in feed:
                    received.append(message)
                    if "delta" in message.data:
                        seen[message.data["n"]].set()
                    if message.data.get("done"):
                        break
            await until_status(app, iid, WorkflowStatus.WAITING)
            deltas = [m.data["delta"] for m in received[:-1]]
            assert deltas == TOKENS
            assert [m.data["n"] for m in received] == list(range(len(TOKENS) + 1))
            assert received[-1].data == {"done": True, "text": "".join(TOKENS),
                                         "n": len(TOKENS)}
            assert {m.metadata["call_id"] for m in received} == {"llm.stream:1"}
            assert {m.metadata["instance_id"] for m in received} == {iid}
            (record,) = [e for e in await app.history(iid) if e.key == "llm.stream:1"]
            assert record.payload["text"] == "".join(TOKENS)

            await app.send_event(Event(type="llm.go", source="test", id=str(uuid.uuid4()),
                                       target_instance_id=iid))
            result = await app.result(iid, timeout=30)  # after a replay of the stream call
            assert result == {"text": "".join(TOKENS), "call_id": "llm.stream:1",
                              "tokens": 18}
            await app.publish("story", {"sentinel": True})
            with trio.fail_after(30):
                after = [m async for m in _until_sentinel(feed)]
            assert after == [], "the replay streamed again"
        nursery.cancel_scope.cancel()
    assert len(fake.calls()) == 1


async def _until_sentinel(feed: Any) -> Any:
    async for message in feed:
        if message.data.get("sentinel"):
            return
        yield message


@workflow
async def streams_without_defaults(ctx: WorkflowContext) -> str:
    return (await llm.stream(ctx, "hi", channel="c", provider="openai", model="m")).text


async def test_stream_without_app_defaults_waits_with_a_clear_error(
        backend: Backend, fake: FakeProvider) -> None:
    async with open_app(backend.url, config=backend.config,
                        workflows=[streams_without_defaults]) as app:
        iid = await app.start(streams_without_defaults)
        with trio.fail_after(60):  # a configuration mistake: shown, not failed
            while (info := await app.status(iid)).error is None:
                assert not info.status.is_terminal
                await trio.sleep(0.02)
        assert info.status is WorkflowStatus.RUNNING
        assert info.error.type.endswith("LLMConfigError")
        assert "llm.set_app_defaults(app" in info.error.message
        llm.set_app_defaults(app, api_keys=KEYS, base_urls={"openai": base_url(fake, "openai")})
        assert await app.result(iid, timeout=60) == "ok"
        assert (await app.status(iid)).error is None
    assert len(fake.calls("openai")) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_fast_stream_after_a_429_arrives_whole_and_in_order(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    tokens = [f"t{n} " for n in range(150)]  # faster than one commit per token
    replies = [Reply(status=429, headers={"retry-after": "0"}), Reply(tokens=tokens)]
    fake.script = lambda p, body: replies.pop(0)
    async with (open_app(backend.url, config=backend.config, workflows=[storyteller]) as app,
                trio.open_nursery() as nursery):
        llm.set_app_defaults(app, model="story-model", api_keys=KEYS,
                             base_urls={p: base_url(fake, p) for p in PROVIDERS})
        port = await nursery.start(serve_http, app)
        async with subscribe(f"ws://127.0.0.1:{port}/channels/ws", ["story"],
                             buffer=1000) as feed:
            iid = await app.start(storyteller, provider)
            with trio.fail_after(60):
                received = [m async for m in _until_done(feed)]
            await until_status(app, iid, WorkflowStatus.WAITING)
        failed = [e.payload["type"] for e in await app.history(iid)
                  if e.kind == "attempt_failed"]
        nursery.cancel_scope.cancel()
    assert failed == ["romancy_trio.llm._types.LLMRateLimitError"]
    assert [m.data["n"] for m in received] == list(range(len(tokens) + 1))
    assert "".join(m.data["delta"] for m in received[:-1]) == "".join(tokens)
    assert received[-1].data["text"] == "".join(tokens)


async def _until_done(feed: Any) -> Any:
    async for message in feed:
        yield message
        if message.data.get("done"):
            return
