"""Raw HTTP/1.1 over a trio socket, for requests a client library would normalise away
(``%00`` in a path, quoted-string headers, stalled or aborted bodies)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(stream: trio.SocketStream, *, limit: float = 30) -> RawResponse:
    """Read one final response (skipping ``100 Continue``; the body by content-length)."""
    data = b""
    with trio.fail_after(limit):
        while True:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed before a response: {data!r}")
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            if not 100 <= int(status_line.split()[1]) < 200:
                break
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(data) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return RawResponse(int(status_line.split()[1]), headers, data[:length])


async def raw(port: int, request: bytes) -> RawResponse:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        return await read_response(stream)


async def raw_request(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> RawResponse:
    return await raw(port, request_bytes(method, target, headers, body))
