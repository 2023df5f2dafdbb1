"""A fake LLM provider on 127.0.0.1 speaking the HTTP APIs the official SDKs use: OpenAI chat
completions and responses, Anthropic messages, Gemini generateContent (JSON and SSE streaming,
tool calls), plus ``POST /tool/{name}`` for tools to report that they ran. It counts what
it receives.

A script decides each answer from (provider, request body): a `Reply`."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from romancy_trio.asgi import serve_asgi

USAGE_IN, USAGE_OUT = 11, 7


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    tokens: list[str] | None = None
    """Streamed answers: these chunks (their concatenation is the text)."""
    before_token: Callable[[int], Awaitable[None]] | None = None
    """Awaited before sending chunk n, e.g. until a client saw chunk n-1."""
    hold: trio.Event | None = None
    """Answer only once this is set (a request that hangs, e.g. until the client timed out)."""


@dataclass
class Seen:
    provider: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.time)


Script = Callable[[str, dict[str, Any]], Reply]


class FakeProvider:
    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or (lambda provider, body: Reply(text="ok"))
        self.seen: list[Seen] = []
        self.tools: list[tuple[str, dict[str, Any]]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, provider: str | None = None) -> list[Seen]:
        return [s for s in self.seen if provider is None or s.provider == provider]

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_asgi(self, task_status=task_status)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw or b"{}")
        path: str = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if path.startswith("/tool/"):
            self.tools.append((path.removeprefix("/tool/"), body))
            return await _json(send, 200, {"result": body})
        if path == "/v1/chat/completions":
            provider = "openai"
        elif path == "/v1/responses":
            provider = "openai_responses"
        elif path == "/v1/messages":
            provider = "anthropic"
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            provider = "gemini"
        else:
            return await _json(send, 404, {"error": {"message": f"no route {path}"}})
        self.seen.append(Seen(provider, path, body, headers))
        reply = self.script(provider, body)
        if reply.hold is not None:
            await reply.hold.wait()
        if reply.status != 200:
            return await _json(send, reply.status, _error(provider, reply), reply.headers)
        model = body.get("model") or path.split("/models/")[-1].split(":")[0]
        streaming = bool(body.get("stream")) or ":streamGenerateContent" in path
        if not streaming:
            return await _json(send, 200, RENDER[provider](reply, model))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        tokens = reply.tokens if reply.tokens is not None else [reply.text]
        for n, event in enumerate(STREAM[provider](reply, tokens, model)):
            if reply.before_token is not None and event[1]:
                await reply.before_token(n - 1)
            await send({"type": "http.response.body", "body": event[0], "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _json(send: Any, status: int, data: Any, headers: dict[str, str] | None = None
                ) -> None:
    raw = json.dumps(data).encode()
    hs = [(b"content-type", b"application/json")]
    hs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": raw})


def _error(provider: str, reply: Reply) -> dict[str, Any]:
    message = reply.text or f"status {reply.status}"
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if provider == "gemini":
        return {"error": {"code": reply.status, "message": message, "status": "ERROR"}}
    return {"error": {"message": message, "type": "error", "code": None}}


def _openai(reply: Reply, model: str) -> dict[str, Any]:
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": n, "arguments": json.dumps(a)}}
             for i, (n, a) in enumerate(reply.tool_calls)]
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT}}


def _anthropic(reply: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a}
                for i, (n, a) in enumerate(reply.tool_calls)]
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT}}


def _gemini(reply: Reply, model: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
    parts += [{"functionCall": {"name": n, "args": a}} for n, a in reply.tool_calls]
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": USAGE_IN, "candidatesTokenCount": USAGE_OUT,
                              "totalTokenCount": USAGE_IN + USAGE_OUT},
            "modelVersion": model}


def _responses(reply: Reply, model: str, text: str | None = None) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    text = reply.text if text is None else text
    if text:
        output.append({"type": "message", "id": "msg_1", "role": "assistant",
                       "status": "completed", "content": [
                           {"type": "output_text", "text": text, "annotations": []}]})
    output += [{"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": n,
                "arguments": json.dumps(a), "status": "completed"}
               for i, (n, a) in enumerate(reply.tool_calls)]
    return {"id": "resp_1", "object": "response", "created_at": 0, "model": model,
            "status": "completed", "output": output, "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {},
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


RENDER: dict[str, Callable[[Reply, str], dict[str, Any]]] = {
    "openai": _openai, "openai_responses": _responses, "anthropic": _anthropic,
    "gemini": _gemini}


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _openai_stream(tokens: list[str], model: str,
                   calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[bytes, bool]]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]}
    out = [(_sse(chunk({"role": "assistant", "content": ""}, None)), False)]
    out += [(_sse(chunk({"content": t}, None)), True) for t in tokens]
    for i, (name, args) in enumerate(calls):  # a call's arguments arrive in two pieces
        text = json.dumps(args)
        first = {"index": i, "id": f"call_{i}", "type": "function",
                 "function": {"name": name, "arguments": text[:3]}}
        rest = {"index": i, "function": {"arguments": text[3:]}}
        out.append((_sse(chunk({"tool_calls": [first]}, None)), False))
        out.append((_sse(chunk({"tool_calls": [rest]}, None)), False))
    out.append((_sse(chunk({}, "tool_calls" if calls else "stop")), False))
    out.append((_sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                      "model": model, "choices": [],
                      "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                                "total_tokens": USAGE_IN + USAGE_OUT}}), False))
    out.append((b"data: [DONE]\n\n", False))
    return out


def _anthropic_stream(tokens: list[str], model: str,
                      calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[bytes, bool]]:
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}}
    out = [(_sse(start, "message_start") + _sse(
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}}, "content_block_start"), False)]
    out += [(_sse({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": t}}, "content_block_delta"), True)
            for t in tokens]
    out.append((_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False))
    for i, (name, args) in enumerate(calls, start=1):
        text = json.dumps(args)
        out.append((_sse({"type": "content_block_start", "index": i, "content_block": {
            "type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {}}},
            "content_block_start") + b"".join(
            _sse({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": piece}}, "content_block_delta")
            for piece in (text[:3], text[3:])) + _sse(
            {"type": "content_block_stop", "index": i}, "content_block_stop"), False))
    stop = "tool_use" if calls else "end_turn"
    out.append((_sse({"type": "message_delta", "delta": {"stop_reason": stop,
                                                           "stop_sequence": None},
                        "usage": {"output_tokens": USAGE_OUT}}, "message_delta")
                + _sse({"type": "message_stop"}, "message_stop"), False))
    return out


def _gemini_stream(tokens: list[str], model: str,
                   calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[bytes, bool]]:
    out = [(b"", False)]
    for i, t in enumerate(tokens):
        data: dict[str, Any] = {"candidates": [{"content": {"role": "model",
                                                            "parts": [{"text": t}]},
                                                "index": 0}], "modelVersion": model}
        if i == len(tokens) - 1:
            data["candidates"][0]["finishReason"] = "STOP"
            data["candidates"][0]["content"]["parts"] += [
                {"functionCall": {"name": n, "args": a}} for n, a in calls]
            data["usageMetadata"] = {"promptTokenCount": USAGE_IN,
                                     "candidatesTokenCount": USAGE_OUT,
                                     "totalTokenCount": USAGE_IN + USAGE_OUT}
        out.append((_sse(data), True))
    return out


def _responses_stream(reply: Reply, tokens: list[str], model: str
                      ) -> list[tuple[bytes, bool]]:
    """Created, a text delta per token, completed (with the tool calls, if any)."""
    def event(kind: str, n: int, **data: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": n, **data}, kind)
    started = {**_responses(Reply(), model), "status": "in_progress", "output": [],
               "usage": None}
    out = [(event("response.created", 0, response=started), False)]
    out += [(event("response.output_text.delta", i + 1, item_id="msg_1", output_index=0,
                   content_index=0, delta=t, logprobs=[]), True)
            for i, t in enumerate(tokens)]
    out.append((event("response.completed", len(tokens) + 1,
                      response=_responses(reply, model, "".join(tokens))), False))
    return out


STREAM: dict[str, Callable[[Reply, list[str], str], list[tuple[bytes, bool]]]] = {
    "openai": lambda r, t, m: _openai_stream(t, m, r.tool_calls),
    "openai_responses": _responses_stream,
    "anthropic": lambda r, t, m: _anthropic_stream(t, m, r.tool_calls),
    "gemini": lambda r, t, m: _gemini_stream(t, m, r.tool_calls)}
