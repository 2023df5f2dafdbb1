"""Workflow-side calls: each model call is one activity, recorded, retried, never repeated on
replay. The workflow builds a provider-neutral request (JSON), fingerprints it, and checks the
recorded fingerprint on the way back: a changed request for a recorded call is a
`NonDeterminismError` naming the call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import trio

from romancy_trio import (
    Activity,
    ActivityContext,
    App,
    NonDeterminismError,
    RetryPolicy,
    WorkflowContext,
    activity,
)

from ._config import Resolved, app_of, check_numbers, fingerprint, resolve
from ._providers import complete
from ._types import NON_RETRYABLE, RESPONSE_KIND, UNTIL_FIXED, LLMConfigError, Response

DEFAULT_RETRY = RetryPolicy(max_attempts=5, initial_interval=1.0, backoff_coefficient=2.0,
                            max_interval=30.0, non_retryable=NON_RETRYABLE,
                            retry_forever=UNTIL_FIXED)
"""Rate limits, 5xx and timeouts are retried, other 4xx are not; a missing key, provider or
model (`LLMConfigError`) is retried every 30 s at most until it is set, never failing the
instance."""

STREAM_BUFFER = 256
"""Deltas waiting to be published (a slow database slows the stream, never grows memory)."""

ROLES = ("user", "assistant", "tool")


async def _run_call(actx: ActivityContext, request: dict[str, Any],
                    channel: str | None = None) -> dict[str, Any]:
    app = app_of(actx.worker_id)
    if channel is not None and app is None:
        raise LLMConfigError("llm.stream publishes through the app: call "
                             "llm.set_app_defaults(app, ...) after open_app")
    cfg = resolve(actx.worker_id, request)
    if channel is None or app is None:
        out = await complete(cfg, request)
    else:
        out = await _streamed(app, actx, cfg, request, channel)
    actx.count("llm.calls")
    actx.count("llm.input_tokens", out["usage"]["input_tokens"])
    actx.count("llm.output_tokens", out["usage"]["output_tokens"])
    return {**out, "kind": RESPONSE_KIND, "provider": cfg.provider,
            "call_id": actx.activity_id, "fingerprint": fingerprint(request)}


async def _streamed(app: App, actx: ActivityContext, cfg: Resolved, request: dict[str, Any],
                    channel: str) -> dict[str, Any]:
    """Publish each delta to ``channel`` as it arrives (batched while a publish commits)."""
    send, receive = trio.open_memory_channel[str](STREAM_BUFFER)
    meta = {"call_id": actx.activity_id, "instance_id": actx.instance_id}
    counter = 0

    async def publisher() -> None:
        nonlocal counter
        async with receive:
            async for first in receive:
                batch = [first]
                with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                    while True:
                        batch.append(receive.receive_nowait())
                items = [{"delta": d, "n": counter + i} for i, d in enumerate(batch)]
                counter += len(batch)
                await app.publish_many(channel, items, metadata=meta)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            async with send:
                out = await complete(cfg, request, send.send)
    except BaseExceptionGroup as group:  # the call's own error, as itself (retry by its type)
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    await app.publish(channel, {"done": True, "text": out["text"], "n": counter},
                      metadata=meta)
    return out


@activity(name="llm.call", transactional=False, retry=DEFAULT_RETRY)
async def llm_call(actx: ActivityContext, request: dict[str, Any]) -> dict[str, Any]:
    """One model call (the request as the workflow built it; keys are found here)."""
    return await _run_call(actx, request)


@activity(name="llm.stream", transactional=False, retry=DEFAULT_RETRY)
async def llm_stream(actx: ActivityContext, request: dict[str, Any], channel: str
                     ) -> dict[str, Any]:
    """One streamed model call: deltas go to ``channel``, the whole answer is recorded."""
    return await _run_call(actx, request, channel)


@dataclass(frozen=True, slots=True)
class Options:
    """What a call, a definition or an agent may set (None: the next level's default)."""

    provider: str | None = None
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None

    def over(self, base: Options) -> Options:
        """These options, with ``base``'s where these are None."""
        mine = {f: getattr(self, f) for f in self.__slots__}
        return replace(base, **{f: v for f, v in mine.items() if v is not None})


def check_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES:
            raise LLMConfigError(f"message {n}: a dict with role in {ROLES} and content, "
                                 f"not {m!r:.200}")
        if not isinstance(m.get("content", ""), str):
            raise LLMConfigError(f"message {n}: content must be a str")
        out.append(dict(m))
    if not out:
        raise LLMConfigError("call_messages needs at least one message")
    return out


def build_request(messages: Sequence[Mapping[str, Any]], opts: Options, *,
                  tools: Sequence[Mapping[str, Any]] = (),
                  schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    check_numbers(opts.max_tokens, opts.temperature)
    request: dict[str, Any] = {"provider": opts.provider, "model": opts.model,
                               "system": opts.system, "messages": check_messages(messages),
                               "max_tokens": opts.max_tokens, "temperature": opts.temperature}
    if tools:
        request["tools"] = [dict(t) for t in tools]
    if schema is not None:
        request["schema"] = dict(schema)
    return request


async def run_request(ctx: WorkflowContext, request: dict[str, Any], opts: Options, *,
                      definition: Activity[Any, Any] | None = None,
                      channel: str | None = None) -> Response:
    """Run (or replay) one call and check the recorded fingerprint against this request."""
    if channel is not None:
        call = llm_stream(ctx, request, channel)
    else:
        call = (definition or llm_call)(ctx, request)
    if opts.retry is not None:
        merged = tuple(dict.fromkeys(opts.retry.non_retryable + NON_RETRYABLE))
        forever = tuple(dict.fromkeys(opts.retry.retry_forever + UNTIL_FIXED))
        call = call.with_retry(replace(opts.retry, non_retryable=merged, retry_forever=forever))
    if opts.timeout is not None:
        call = call.with_timeout(opts.timeout)
    record: dict[str, Any] = await call
    response = Response.from_record(record)
    expected = fingerprint(request)
    if response.fingerprint != expected:
        raise NonDeterminismError(
            f"replay: LLM call {response.call_id!r} was recorded for another request "
            f"(fingerprint {response.fingerprint[:12]}, now {expected[:12]}): the prompt, "
            "messages, model or options changed under a recorded history. Give the changed "
            "call a new name (a new durable_call, or keep the old code for running instances)")
    return response


def user(prompt: str) -> list[dict[str, Any]]:
    if not isinstance(prompt, str):
        raise LLMConfigError(f"the prompt must be a str, not {type(prompt).__qualname__}")
    return [{"role": "user", "content": prompt}]


async def call(ctx: WorkflowContext, prompt: str, *, system: str | None = None,
               provider: str | None = None, model: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None,
               retry: RetryPolicy | None = None, timeout: float | None = None) -> Response:
    """Ask the model once, durably: the answer is recorded; replay returns it uncalled."""
    opts = Options(provider, model, system, max_tokens, temperature, retry, timeout)
    return await run_request(ctx, build_request(user(prompt), opts), opts)


async def call_messages(ctx: WorkflowContext, messages: Sequence[Mapping[str, Any]], *,
                        system: str | None = None, provider: str | None = None,
                        model: str | None = None, max_tokens: int | None = None,
                        temperature: float | None = None, retry: RetryPolicy | None = None,
                        timeout: float | None = None) -> Response:
    """A multi-turn conversation: ``[{"role": "user" | "assistant", "content": ...}, ...]``."""
    opts = Options(provider, model, system, max_tokens, temperature, retry, timeout)
    return await run_request(ctx, build_request(messages, opts), opts)


async def stream(ctx: WorkflowContext, prompt: str, *, channel: str,
                 system: str | None = None, provider: str | None = None,
                 model: str | None = None, max_tokens: int | None = None,
                 temperature: float | None = None, retry: RetryPolicy | None = None,
                 timeout: float | None = None) -> Response:
    """Ask the model, publishing the answer's text to ``channel`` as it arrives
    (``{"delta": ..., "n": ...}`` messages, then ``{"done": true, "text": ..., "n": ...}``,
    metadata ``call_id``/``instance_id``); the whole answer is recorded once. Replay returns
    the recorded answer and publishes nothing. A retried attempt streams again from the start
    (its messages carry the same ``call_id``, ``n`` from 0)."""
    opts = Options(provider, model, system, max_tokens, temperature, retry, timeout)
    return await run_request(ctx, build_request(user(prompt), opts), opts, channel=channel)
