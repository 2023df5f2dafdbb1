"""One call to a provider through its official SDK, normalized: text, model, stop reason, usage,
tool calls. OpenAI and Anthropic use their async clients on Trio; Gemini its sync client in a
worker thread (its async client needs an asyncio loop). The SDKs' own retries are off: the
activity's RetryPolicy retries, so each failed attempt is recorded.

Messages are provider-neutral dicts: ``{"role": "user" | "assistant" | "tool", "content": str}``,
an assistant's ``"tool_calls": [{"id", "name", "arguments"}]``, a tool result's
``"tool_call_id"`` and ``"name"``.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._config import Resolved, scrub
from ._responses import responses
from ._types import (
    LLMConfigError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
)

OnDelta = Callable[[str], Awaitable[None]] | None
RETRY_AFTER_CAP = 60.0
"""Longest Retry-After honoured inside an attempt (seconds)."""


async def complete(cfg: Resolved, request: dict[str, Any], on_delta: OnDelta = None
                   ) -> dict[str, Any]:
    call = {"openai": _openai, "openai_responses": responses, "anthropic": _anthropic,
            "gemini": _gemini}[cfg.provider]
    try:
        return await call(cfg, request, on_delta)
    except (LLMRateLimitError, LLMServerError, LLMTimeoutError, LLMRequestError,
            LLMConfigError):
        raise
    except Exception as exc:
        await _raise_mapped(cfg, exc)
        raise


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
        try:  # an HTTP date
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # unreadable: the RetryPolicy's interval alone
        return max(0.0, when.timestamp() - time.time())
    return None


async def _raise_mapped(cfg: Resolved, exc: Exception) -> None:
    """Turn an SDK error into ours (raised from None, its message scrubbed of the key)."""
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    response = getattr(exc, "response", None)
    message = scrub(f"{cfg.provider}: {type(exc).__name__}: {exc}", cfg.api_key)
    if isinstance(status, int) and 400 <= status < 600:
        if status == 429:
            wait = _retry_after(getattr(response, "headers", None))
            if wait is not None:
                await trio.sleep(min(wait, RETRY_AFTER_CAP))
            raise LLMRateLimitError(f"{message} (Retry-After: {wait})") from None
        if status >= 500:
            raise LLMServerError(message) from None
        if status in (408,):
            raise LLMTimeoutError(message) from None
        raise LLMRequestError(message, status) from None
    name = type(exc).__name__
    if "Timeout" in name or "Connect" in name or "Connection" in name:
        raise LLMTimeoutError(message) from None


# -- OpenAI (chat completions; any OpenAI-compatible server through base_url) -------------------
def _openai_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.get("system"):
        out.append({"role": "system", "content": request["system"]})
    for m in request["messages"]:
        if m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"],
                        "content": m["content"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": m.get("content") or None,
                        "tool_calls": [{"id": t["id"], "type": "function", "function": {
                            "name": t["name"], "arguments": json.dumps(t["arguments"])}}
                            for t in m["tool_calls"]]})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


async def _openai(cfg: Resolved, request: dict[str, Any], on_delta: OnDelta) -> dict[str, Any]:
    import openai

    args: dict[str, Any] = {"model": cfg.model, "messages": _openai_messages(request),
                            "max_tokens": cfg.max_tokens}
    if cfg.temperature is not None:
        args["temperature"] = cfg.temperature
    if request.get("tools"):
        args["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": t["parameters"]}} for t in request["tools"]]
    if request.get("schema"):
        args["response_format"] = {"type": "json_schema", "json_schema": {
            "name": request["schema"]["name"], "schema": request["schema"]["schema"]}}
    async with openai.AsyncOpenAI(api_key=cfg.api_key, base_url=cfg.base_url, max_retries=0,
                                  timeout=cfg.timeout) as client:
        if on_delta is None:
            r = await client.chat.completions.create(**args)
            choice = r.choices[0]
            calls = [{"id": t.id, "name": t.function.name,
                      "arguments": _json_args(t.function.arguments)}
                     for t in choice.message.tool_calls or () if t.type == "function"]
            usage = r.usage
            return _result(choice.message.content or "", r.model, choice.finish_reason,
                           usage.prompt_tokens if usage else 0,
                           usage.completion_tokens if usage else 0, calls)
        # The SDK's AsyncStream stops reading at [DONE] and leaves its inner generators to
        # the garbage collector, which Trio reports (ResourceWarning); read the SSE lines to
        # the end ourselves, through the same client and request.
        parts: list[str] = []
        model, finish, tin, tout = cfg.model, None, 0, 0
        pieces: dict[int, dict[str, Any]] = {}  # tool calls by index, arguments in pieces
        async with client.chat.completions.with_streaming_response.create(
                **args, stream=True, stream_options={"include_usage": True}) as raw:
            async for line in raw.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = openai.types.chat.ChatCompletionChunk.model_validate_json(line[5:])
                model = chunk.model or model
                if chunk.usage is not None:
                    tin, tout = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for c in chunk.choices:
                    finish = c.finish_reason or finish
                    if c.delta.content:
                        parts.append(c.delta.content)
                        await on_delta(c.delta.content)
                    for t in c.delta.tool_calls or ():
                        call = pieces.setdefault(t.index, {"id": "", "name": "", "args": ""})
                        call["id"] = t.id or call["id"]
                        if t.function is not None:
                            call["name"] = t.function.name or call["name"]
                            call["args"] += t.function.arguments or ""
        return _result("".join(parts), model, finish, tin, tout, [
            {"id": c["id"], "name": c["name"], "arguments": _json_args(c["args"])}
            for _, c in sorted(pieces.items())])


def _json_args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise LLMServerError(f"the model's tool arguments are not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LLMServerError(f"the model's tool arguments are not an object: {text[:200]!r}")
    return value


def _result(text: str, model: str, stop: str | None, tin: int, tout: int,
            calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"text": text, "model": model, "stop_reason": stop,
            "usage": {"input_tokens": int(tin or 0), "output_tokens": int(tout or 0)},
            "tool_calls": calls}


# -- Anthropic (messages) -----------------------------------------------------------------------
def _anthropic_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in request["messages"]:
        if m["role"] == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m["tool_call_id"],
                                     "content": m["content"]}]
        elif m["role"] == "assistant":
            role = "assistant"
            blocks = ([{"type": "text", "text": m["content"]}] if m.get("content") else [])
            blocks += [{"type": "tool_use", "id": t["id"], "name": t["name"],
                        "input": t["arguments"]} for t in m.get("tool_calls") or ()]
        else:
            role, blocks = m["role"], [{"type": "text", "text": m["content"]}]
        if out and out[-1]["role"] == role:  # the API wants turns to alternate
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


async def _anthropic(cfg: Resolved, request: dict[str, Any], on_delta: OnDelta
                     ) -> dict[str, Any]:
    import anthropic

    args: dict[str, Any] = {"model": cfg.model, "messages": _anthropic_messages(request),
                            "max_tokens": cfg.max_tokens}
    if request.get("system"):
        args["system"] = request["system"]
    if cfg.temperature is not None:  # the 2.x SDK has no parameter for it; the API may
        args["extra_body"] = {"temperature": cfg.temperature}
    if request.get("tools"):
        args["tools"] = [{"name": t["name"], "description": t.get("description", ""),
                          "input_schema": t["parameters"]} for t in request["tools"]]
    if request.get("schema"):  # structured output: the answer's text is the JSON
        args["output_config"] = {"format": {"type": "json_schema",
                                            "schema": request["schema"]["schema"]}}
    async with anthropic.AsyncAnthropic(api_key=cfg.api_key, base_url=cfg.base_url,
                                        max_retries=0, timeout=cfg.timeout) as client:
        if on_delta is None:
            r = await client.messages.create(**args)
            text, calls = [], []
            for block in r.content:
                if block.type == "text":
                    text.append(block.text)
                elif block.type == "tool_use":
                    calls.append({"id": block.id, "name": block.name,
                                  "arguments": dict(block.input)})
            return _result("".join(text), r.model, r.stop_reason, r.usage.input_tokens,
                           r.usage.output_tokens, calls)
        stream = await client.messages.create(**args, stream=True)
        parts: list[str] = []
        model, stop, tin, tout = cfg.model, None, 0, 0
        uses: dict[int, dict[str, Any]] = {}  # tool_use blocks by index, input JSON in pieces
        async with stream:
            async for event in stream:
                if event.type == "message_start":
                    model, tin = event.message.model, event.message.usage.input_tokens
                elif (event.type == "content_block_start"
                      and event.content_block.type == "tool_use"):
                    uses[event.index] = {"id": event.content_block.id,
                                         "name": event.content_block.name, "args": ""}
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    await on_delta(event.delta.text)
                elif (event.type == "content_block_delta"
                      and event.delta.type == "input_json_delta" and event.index in uses):
                    uses[event.index]["args"] += event.delta.partial_json
                elif event.type == "message_delta":
                    stop, tout = event.delta.stop_reason or stop, event.usage.output_tokens
        return _result("".join(parts), model, stop, tin, tout, [
            {"id": u["id"], "name": u["name"], "arguments": _json_args(u["args"])}
            for _, u in sorted(uses.items())])


# -- Gemini (generateContent), sync client in a worker thread -----------------------------------
def _gemini_contents(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in request["messages"]:
        if m["role"] == "tool":
            out.append({"role": "user", "parts": [{"function_response": {
                "name": m["name"], "response": {"result": m["content"]}}}]})
        elif m["role"] == "assistant":
            parts: list[dict[str, Any]] = ([{"text": m["content"]}] if m.get("content") else [])
            parts += [{"function_call": {"name": t["name"], "args": t["arguments"]}}
                      for t in m.get("tool_calls") or ()]
            out.append({"role": "model", "parts": parts})
        else:
            out.append({"role": "user", "parts": [{"text": m["content"]}]})
    return out


async def _gemini(cfg: Resolved, request: dict[str, Any], on_delta: OnDelta) -> dict[str, Any]:
    from google import genai
    from google.genai import types

    config: Any = {"max_output_tokens": cfg.max_tokens}  # GenerateContentConfigDict
    if request.get("system"):
        config["system_instruction"] = request["system"]
    if cfg.temperature is not None:
        config["temperature"] = cfg.temperature
    if request.get("tools"):
        config["tools"] = [{"function_declarations": [
            {"name": t["name"], "description": t.get("description", ""),
             "parameters_json_schema": t["parameters"]} for t in request["tools"]]}]
        config["automatic_function_calling"] = {"disable": True}
    if request.get("schema"):
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = request["schema"]["schema"]
    options = types.HttpOptions(base_url=cfg.base_url, timeout=int(cfg.timeout * 1000))
    contents = _gemini_contents(request)
    token = trio.lowlevel.current_trio_token()

    def run() -> dict[str, Any]:
        with genai.Client(api_key=cfg.api_key, http_options=options) as client:
            if on_delta is None:
                r = client.models.generate_content(model=cfg.model, contents=contents,
                                                   config=config)
                return _gemini_result(cfg, [r])
            chunks = []
            for chunk in client.models.generate_content_stream(
                    model=cfg.model, contents=contents, config=config):
                chunks.append(chunk)
                if chunk.text:
                    trio.from_thread.run(on_delta, chunk.text, trio_token=token)
            return _gemini_result(cfg, chunks)

    return await trio.to_thread.run_sync(run, abandon_on_cancel=True)


def _gemini_result(cfg: Resolved, chunks: list[Any]) -> dict[str, Any]:
    text, calls, stop, tin, tout, model = [], [], None, 0, 0, cfg.model
    for n, r in enumerate(chunks):
        model = r.model_version or model
        if r.usage_metadata is not None:
            tin = r.usage_metadata.prompt_token_count or tin
            tout = r.usage_metadata.candidates_token_count or tout
        for cand in r.candidates or ():
            stop = str(cand.finish_reason.value) if cand.finish_reason else stop
            for i, part in enumerate(cand.content.parts or () if cand.content else ()):
                if part.text:
                    text.append(part.text)
                if part.function_call is not None:
                    calls.append({"id": part.function_call.id or f"call_{n}_{i}",
                                  "name": part.function_call.name,
                                  "arguments": dict(part.function_call.args or {})})
    return _result("".join(text), model, stop, tin, tout, calls)
