"""The streamable-HTTP endpoint, with JSON-RPC validation in front of the SDK's transport.

The SDK answers a POST body that is JSON but no JSON-RPC message with -32602 (invalid params);
JSON-RPC says -32600 (invalid request). This wrapper reads the body (bounded), answers such a
body itself (400, -32600, with the request's id when usable) and hands every other request to
the SDK with the body replayed unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._stdio import parse_line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class StrictJsonRpc:
    def __init__(self, inner: Asgi, max_body: int) -> None:
        self.inner = inner
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_body or not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if size <= self.max_body and body.strip():
            parsed = parse_line(body.replace(b"\n", b" "))
            if isinstance(parsed, bytes) and b'"code": -32600' in parsed:
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": parsed.rstrip(b"\n")})
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.inner(scope, replay, send)
