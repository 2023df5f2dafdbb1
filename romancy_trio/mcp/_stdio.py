"""MCP over stdin/stdout that answers malformed frames (the SDK's stdio transport drops them).

One JSON-RPC message per line. A line that is not JSON is answered ``-32700`` (parse error), a
JSON value that is not a JSON-RPC 2.0 message ``-32600`` (invalid request, with the request's
id when it has a usable one), a line longer than ``max_line`` bytes ``-32600`` too (the rest of
it is skipped without being buffered); then reading goes on. While serving, fd 1 points at
stderr (a stray ``print`` cannot corrupt the protocol) and fd 0 at the null device.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import mcp_types as types
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

MAX_LINE: Final = 4 * 1024 * 1024
READ_CHUNK: Final = 65536
DRAIN_TIMEOUT: Final = 5.0
"""How long, after the server ended, answers still queued may take to be written."""


def _error(code: int, message: str, ident: Any = None) -> bytes:
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        ident = None
    frame = {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
    return json.dumps(frame).encode() + b"\n"


def parse_line(line: bytes) -> SessionMessage | bytes | None:
    """A message to serve, an error frame to answer with, or None (a blank line)."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        return _error(types.PARSE_ERROR, f"Parse error: {exc}")
    if not isinstance(obj, dict):
        return _error(types.INVALID_REQUEST, "Invalid Request: a message is one JSON object "
                                             "(not a batch, not a bare value)")
    try:
        message = types.jsonrpc_message_adapter.validate_python(obj, by_name=False)
    except ValidationError:
        return _error(types.INVALID_REQUEST,
                      "Invalid Request: not a JSON-RPC 2.0 request, notification or response",
                      obj.get("id"))
    return SessionMessage(message)


class _Lines:
    """Lines of a byte stream, each at most ``max_line`` bytes (longer ones are reported)."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_line: int) -> None:
        self.stream = stream
        self.max_line = max_line
        self.buffer = bytearray()
        self.skipping = False

    async def __aiter__(self) -> AsyncIterator[bytes | None]:
        """Yields each line; None for an over-long one."""
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self.buffer[:newline])
                del self.buffer[:newline + 1]
                if self.skipping:
                    self.skipping = False
                    continue
                yield line if len(line) <= self.max_line else None
                continue
            if len(self.buffer) > self.max_line:
                self.buffer.clear()
                if not self.skipping:
                    self.skipping = True
                    yield None
            chunk = await self.stream.receive_some(READ_CHUNK)
            if not chunk:
                if self.buffer and not self.skipping:
                    yield bytes(self.buffer)
                return
            self.buffer += chunk


@asynccontextmanager
async def strict_stdio(max_line: int = MAX_LINE) -> AsyncIterator[
        tuple[MemoryObjectReceiveStream[SessionMessage | Exception],
              MemoryObjectSendStream[SessionMessage]]]:
    """The (read, write) stream pair of ``Server.run``, over this process's stdin/stdout."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    stdin = trio.lowlevel.FdStream(wire_in)
    stdout = trio.lowlevel.FdStream(wire_out)
    lock = trio.Lock()
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)

    async def write(frame: bytes) -> None:
        async with lock:
            await stdout.send_all(frame)

    async def reader() -> None:
        async with read_send:
            async for line in _Lines(stdin, max_line):
                parsed = (_error(types.INVALID_REQUEST, f"Invalid Request: message longer than "
                                                        f"{max_line} bytes")
                          if line is None else parse_line(line))
                if isinstance(parsed, bytes):
                    await write(parsed)
                elif parsed is not None:
                    await read_send.send(parsed)

    written = trio.Event()

    async def writer() -> None:
        async with write_recv:
            async for message in write_recv:
                text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await write(text.encode() + b"\n")
        written.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(writer)
            try:
                yield read_recv, write_send
                with trio.move_on_after(DRAIN_TIMEOUT):  # the server closed its side: flush
                    await written.wait()
            finally:
                nursery.cancel_scope.cancel()
    finally:
        os.dup2(wire_out, 1)
        await stdin.aclose()
        await stdout.aclose()
