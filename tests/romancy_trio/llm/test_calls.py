"""llm.call / call_messages with the real OpenAI, Anthropic and Gemini SDKs against the fake
provider: recorded once, never repeated on replay, retried on 429/5xx/timeouts only, usage,
fingerprints, and keys that never reach the database, the logs or an error."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import trio

from romancy_trio import (
    Event,
    Hooks,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    llm,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio.hooks import ActivityStarted

from ..conftest import Backend
from ._support import all_rows_text, until_status
from .conftest import KEYS, base_url
from .fake_provider import USAGE_IN, USAGE_OUT, FakeProvider, Reply

PROVIDERS = ["openai", "openai_responses", "anthropic", "gemini"]
FAST = RetryPolicy(max_attempts=4, initial_interval=0.05, max_interval=0.2)
PROMPT = {"text": "What is the capital of France?"}


@workflow
async def two_calls(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    first = await llm.call(ctx, PROMPT["text"], provider=provider, system="Answer briefly.",
                           temperature=0.5, retry=FAST)
    await wait_event(ctx, "llm.go")  # suspends: the rest runs after a replay
    second = await llm.call_messages(ctx, [
        {"role": "user", "content": PROMPT["text"]},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And of Italy?"}], provider=provider, max_tokens=50)
    return {"first": first.text, "second": second.text, "model": second.model,
            "stop": first.stop_reason, "ids": [first.call_id, second.call_id],
            "tokens": [first.usage.input_tokens, first.usage.output_tokens]}


@workflow
async def one_call(ctx: WorkflowContext, provider: str) -> str:
    return (await llm.call(ctx, "hello", provider=provider, retry=FAST)).text


def configure(app: Any, fake: FakeProvider, **extra: Any) -> None:
    llm.set_app_defaults(app, model="test-model", api_keys=KEYS,
                         base_urls={p: base_url(fake, p) for p in PROVIDERS}, **extra)


def answer(provider: str, body: dict[str, Any]) -> Reply:
    text = str(body).lower()
    return Reply(text="Rome." if "italy" in text else "Paris.")


async def send_go(app: Any, iid: str) -> None:
    await app.send_event(Event(type="llm.go", source="test", id=str(uuid.uuid4()),
                               target_instance_id=iid))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_call_is_recorded_and_replay_does_not_call_again(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    fake.script = answer
    async with open_app(backend.url, config=backend.config, workflows=[two_calls]) as app:
        configure(app, fake)
        iid = await app.start(two_calls, provider)
        await until_status(app, iid, WorkflowStatus.WAITING)
        assert len(fake.calls()) == 1
        await send_go(app, iid)
        result = await app.result(iid, timeout=30)
        assert result == {"first": "Paris.", "second": "Rome.", "model": "test-model",
                          "stop": {"openai": "stop", "openai_responses": "completed",
                                   "anthropic": "end_turn",
                                   "gemini": "STOP"}[provider],
                          "ids": ["llm.call:1", "llm.call:2"], "tokens": [11, 7]}
        seen = fake.calls(provider)
        assert len(seen) == 2, "the replayed first call reached the provider again"
        first = str(seen[0].body)
        assert "Answer briefly." in first and PROMPT["text"] in first and "0.5" in first
        assert "Paris." in str(seen[1].body) and "50" in str(seen[1].body)
        assert KEYS[provider] in str(seen[0].headers)  # the key was sent...
        assert KEYS[provider] not in await all_rows_text(app)  # ...and never stored
        used = await llm.usage(app, iid)
        assert (used.input_tokens, used.output_tokens, used.calls) == (22, 14, 2)


async def test_a_changed_request_on_replay_is_a_nondeterminism_error(
        backend: Backend, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.script = answer
    async with open_app(backend.url, config=backend.config, workflows=[two_calls]) as app:
        configure(app, fake)
        iid = await app.start(two_calls, "openai")
        await until_status(app, iid, WorkflowStatus.WAITING)
    # a new worker (no resident state of the instance): it resumes by replaying the history
    monkeypatch.setitem(PROMPT, "text", "What is the capital of Spain?")
    async with open_app(backend.url, config=backend.config, workflows=[two_calls]) as app:
        configure(app, fake)
        await send_go(app, iid)
        with pytest.raises(WorkflowFailedError) as failed:
            await app.result(iid, timeout=30)
        assert failed.value.error_type == "romancy_trio._errors.NonDeterminismError"
        assert "LLM call 'llm.call:1' was recorded for another request" in failed.value.message
        assert len(fake.calls()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_waits_for_retry_after_then_succeeds(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    replies = [Reply(status=429, text="slow down", headers={"retry-after": "1"}),
               Reply(text="finally")]
    fake.script = lambda p, body: replies.pop(0)
    async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
        configure(app, fake)
        iid = await app.start(one_call, provider)
        assert await app.result(iid, timeout=30) == "finally"
        times = [s.at for s in fake.calls()]
        assert len(times) == 2
        assert times[1] - times[0] >= 0.95, "Retry-After: 1 was not honoured"
        failed = [e for e in await app.history(iid) if e.kind == "attempt_failed"]
        assert [e.payload["type"].rsplit(".", 1)[-1] for e in failed] == ["LLMRateLimitError"]
        assert "429" in failed[0].payload["message"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_5xx_and_timeouts_are_retried(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    hold = trio.Event()  # never set: the first request hangs until the client gives up
    replies = [Reply(hold=hold), Reply(status=503, text="overloaded"), Reply(text="made it")]
    fake.script = lambda p, body: replies.pop(0)
    async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
        configure(app, fake, timeout=1.0)
        iid = await app.start(one_call, provider)
        assert await app.result(iid, timeout=60) == "made it"
        failed = [e.payload["type"].rsplit(".", 1)[-1] for e in await app.history(iid)
                  if e.kind == "attempt_failed"]
        assert failed == ["LLMTimeoutError", "LLMServerError"]
        assert len(fake.calls()) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_400_fails_at_once_and_no_key_is_written_or_logged(
        backend: Backend, fake: FakeProvider, provider: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script = lambda p, body: Reply(status=400, text="max_tokens is too large")
    async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
        configure(app, fake)
        iid = await app.start(one_call, provider)
        with pytest.raises(WorkflowFailedError) as failed:
            await app.result(iid, timeout=30)
        err = failed.value
        assert err.error_type == "romancy_trio.llm._types.LLMRequestError"
        assert "400" in err.message and "max_tokens is too large" in err.message
        assert err.activity_id == "llm.call:1"
        assert len(fake.calls()) == 1, "a 400 was retried"
        assert KEYS[provider] in str(fake.calls()[0].headers)
        stored = await all_rows_text(app)
        assert "max_tokens is too large" in stored  # the failure is recorded...
        assert KEYS[provider] not in stored  # ...without the key
        assert KEYS[provider] not in str(err) + repr(err.args)
        logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
        assert KEYS[provider] not in logged


class _Attempts(Hooks):
    """Counts the attempts the worker starts (every one, recorded or not)."""

    def __init__(self) -> None:
        self.started: list[int] = []

    async def on_activity_started(self, event: ActivityStarted) -> None:
        self.started.append(event.attempt)


@pytest.mark.parametrize("fix", ["set_app_defaults", "env_in_a_new_worker"])
async def test_a_missing_key_waits_for_the_operator_then_completes(
        backend: Backend, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, fix: str) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ROMANCY_LLM_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    seen = _Attempts()
    caplog.set_level(logging.WARNING, "romancy_trio.activities")
    async with open_app(backend.url, config=backend.config, workflows=[one_call],
                        hooks=[seen]) as app:
        llm.set_app_defaults(app, model="m")  # no key anywhere
        iid = await app.start(one_call, "openai")
        with trio.fail_after(60):  # FAST allows 4 attempts; a config error is not counted
            while len(seen.started) < 8:
                await trio.sleep(0.02)
        info = await app.status(iid)
        assert info.status is WorkflowStatus.RUNNING
        assert info.error is not None and info.error.type.endswith("LLMConfigError")
        assert "no API key for provider 'openai': set OPENAI_API_KEY" in info.error.message
        assert seen.started[:8] == list(range(1, 9))
        failed = [e for e in await app.history(iid) if e.kind == "attempt_failed"]
        assert [e.key for e in failed] == ["llm.call:1#attempt-1"]  # not one per attempt
        warned = [r for r in caplog.records if "waits for its configuration" in r.getMessage()]
        assert len(warned) == 1 and iid in warned[0].getMessage()
        assert fake.calls() == []
        if fix == "set_app_defaults":
            configure(app, fake)
            assert await app.result(iid, timeout=30) == "ok"
    if fix == "env_in_a_new_worker":
        monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
        monkeypatch.setenv("OPENAI_BASE_URL", base_url(fake, "openai"))
        async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
            llm.set_app_defaults(app, model="m")
            assert await app.result(iid, timeout=60) == "ok"
    async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
        info = await app.status(iid)
        assert info.status is WorkflowStatus.COMPLETED and info.error is None
        assert len(fake.calls("openai")) == 1  # the model was asked once
        events = await app.history(iid)
        assert [e.key for e in events if e.kind in ("attempt_failed", "activity_completed")
                ] == ["llm.call:1#attempt-1", "llm.call:1"]
        assert info.counters == {"llm.calls": 1, "llm.input_tokens": USAGE_IN,
                                 "llm.output_tokens": USAGE_OUT}
        assert KEYS["openai"] not in await all_rows_text(app)


async def test_a_bad_provider_name_is_refused_at_once(backend: Backend) -> None:
    async with open_app(backend.url, config=backend.config, workflows=[one_call]) as app:
        with pytest.raises(llm.LLMConfigError, match="unknown LLM provider 'gpt'"):
            llm.set_app_defaults(app, provider="gpt")

