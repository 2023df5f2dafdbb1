"""A lean HTTP/1.1 keep-alive client for load generation (one connection, one request at a time).

The load generator shares this 2-core machine with the server and PostgreSQL, so every
microsecond it spends is taken from the server it measures. httpx costs several hundred
microseconds of CPU per request; this client sends pre-encoded bytes and reads one
``Content-Length`` response, which is all the benchmark needs. It is strict: a response it
cannot parse (no Content-Length, a closed connection) raises, so a server misbehaving under
load is reported rather than miscounted. Correctness checks elsewhere still use httpx.
"""

from __future__ import annotations

import json
from typing import Any

import trio

_MAX_HEAD = 64 * 1024


class LeanHttpError(RuntimeError):
    pass


def encode_request(host: str, req: dict[str, Any]) -> bytes:
    """``{"method"?, "url", "content"?, "json"?, "headers"?}`` (httpx-style) as HTTP/1.1 bytes."""
    method = req.get("method", "POST")
    body: bytes = b""
    headers = dict(req.get("headers", {}))
    if "json" in req:
        body = json.dumps(req["json"]).encode()
        headers.setdefault("content-type", "application/json")
    elif "content" in req:
        body = req["content"]
    lines = [f"{method} {req['url']} HTTP/1.1", f"host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method != "GET":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class LeanConnection:
    def __init__(self, stream: trio.SocketStream, host: str, port: int) -> None:
        self.stream = stream
        self.host = f"{host}:{port}"
        self._address = (host, port)
        self._buf = bytearray()
        self._server_closing = False
        self.reconnects = 0

    @classmethod
    async def open(cls, host: str, port: int) -> LeanConnection:
        stream = await trio.open_tcp_stream(host, port)
        return cls(stream, host, port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one encoded request; return (status, body) of its response. A server that
        answered ``connection: close`` (hypercorn does after 1,000 requests on a connection)
        gets a new connection first."""
        if self._server_closing:
            await self.stream.aclose()
            self.stream = await trio.open_tcp_stream(*self._address)
            self._buf.clear()
            self._server_closing = False
            self.reconnects += 1
        await self.stream.send_all(raw)
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            await self._fill(len(self._buf) > _MAX_HEAD)
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length = None
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                self._server_closing = True

        if length is None:
            raise LeanHttpError(f"response without content-length: {status_line!r}")
        while len(self._buf) < length:
            await self._fill(False)
        body = bytes(self._buf[:length])
        del self._buf[:length]
        return status, body

    async def _fill(self, too_big: bool) -> None:
        if too_big:
            raise LeanHttpError("response head larger than 64 KiB")
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise LeanHttpError("server closed the connection mid-response")
        self._buf += chunk

    async def aclose(self) -> None:
        await self.stream.aclose()
