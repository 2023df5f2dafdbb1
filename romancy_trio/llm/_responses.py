"""OpenAI's Responses API (``client.responses.create``), the provider ``"openai_responses"``:
the same keys and base URL as ``"openai"`` (chat completions), another endpoint. Tools are
function tools; structured output is ``text.format`` ``json_schema``. Streaming reads the SSE
events to the end: text deltas as they come, the tool calls from the completed response."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from ._config import Resolved
from ._types import LLMServerError

OnDelta = Callable[[str], Awaitable[None]] | None


def _input(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in request["messages"]:
        if m["role"] == "tool":
            out.append({"type": "function_call_output", "call_id": m["tool_call_id"],
                        "output": m["content"]})
            continue
        if m.get("content"):
            out.append({"role": m["role"], "content": m["content"]})
        out += [{"type": "function_call", "call_id": t["id"], "name": t["name"],
                 "arguments": json.dumps(t["arguments"])} for t in m.get("tool_calls") or ()]
    return out


def _args(cfg: Resolved, request: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"model": cfg.model, "input": _input(request),
                            "max_output_tokens": cfg.max_tokens, "store": False}
    if request.get("system"):
        args["instructions"] = request["system"]
    if cfg.temperature is not None:
        args["temperature"] = cfg.temperature
    if request.get("tools"):
        args["tools"] = [{"type": "function", "name": t["name"],
                          "description": t.get("description", ""),
                          "parameters": t["parameters"], "strict": False}
                         for t in request["tools"]]
    if request.get("schema"):
        args["text"] = {"format": {"type": "json_schema", "name": request["schema"]["name"],
                                   "schema": request["schema"]["schema"], "strict": False}}
    return args


def _result(response: dict[str, Any], model: str, text: str | None = None) -> dict[str, Any]:
    """Normalize a response (as JSON): ``text`` given when it was streamed."""
    parts, calls = [], []
    for item in response.get("output") or ():
        if item.get("type") == "message":
            parts += [c.get("text", "") for c in item.get("content") or ()
                      if c.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            try:
                arguments = json.loads(item.get("arguments") or "{}")
            except ValueError as exc:
                raise LLMServerError(f"the model's tool arguments are not JSON: {exc}"
                                     ) from None
            if not isinstance(arguments, dict):
                raise LLMServerError("the model's tool arguments are not an object")
            calls.append({"id": item["call_id"], "name": item["name"], "arguments": arguments})
    incomplete = response.get("incomplete_details") or {}
    stop = ("tool_calls" if calls else incomplete.get("reason") or response.get("status"))
    usage = response.get("usage") or {}
    return {"text": "".join(parts) if text is None else text,
            "model": response.get("model") or model, "stop_reason": stop,
            "usage": {"input_tokens": int(usage.get("input_tokens") or 0),
                      "output_tokens": int(usage.get("output_tokens") or 0)},
            "tool_calls": calls}


async def responses(cfg: Resolved, request: dict[str, Any], on_delta: OnDelta
                    ) -> dict[str, Any]:
    import openai

    async with openai.AsyncOpenAI(api_key=cfg.api_key, base_url=cfg.base_url, max_retries=0,
                                  timeout=cfg.timeout) as client:
        if on_delta is None:
            r = await client.responses.create(**_args(cfg, request))
            return _result(r.model_dump(mode="json"), cfg.model)
        # read the SSE lines to the end ourselves (see _providers._openai)
        parts: list[str] = []
        final: dict[str, Any] = {}
        async with client.responses.with_streaming_response.create(
                **_args(cfg, request), stream=True) as raw:
            async for line in raw.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                kind = event.get("type")
                if kind == "response.output_text.delta" and event.get("delta"):
                    parts.append(event["delta"])
                    await on_delta(event["delta"])
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.get("response") or {}
                elif kind in ("response.failed", "error"):
                    failure = (event.get("response") or {}).get("error") or event
                    raise LLMServerError(f"openai_responses: the stream failed: "
                                         f"{failure.get('message', '')[:500]}")
        if not final:
            raise LLMServerError("openai_responses: the stream ended without a response")
        return _result(final, cfg.model, "".join(parts))
