"""A bare JSON-RPC client over a server subprocess's stdin/stdout (one message per line), to
send what the SDK's client would not: malformed frames, task-augmented calls."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from typing import Any

import trio

from .conftest import CWD, PYTHON, server_env

INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw-test-client", "version": "1"}}


class RawClient:
    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.buffer = b""
        self.next_id = 0

    async def send_line(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(line + b"\n")

    async def receive(self, timeout: float = 60) -> dict[str, Any]:
        """The next message from the server."""
        assert self.proc.stdout is not None
        with trio.fail_after(timeout):
            while b"\n" not in self.buffer:
                chunk = await self.proc.stdout.receive_some(65536)
                if not chunk:
                    raise EOFError("the server closed its stdout")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    async def request(self, method: str, params: dict[str, Any] | None = None,
                      timeout: float = 60) -> dict[str, Any]:
        """Send a request; return its response (result or error), skipping notifications."""
        self.next_id += 1
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            frame["params"] = params
        await self.send_line(json.dumps(frame).encode())
        while True:
            message = await self.receive(timeout)
            if message.get("id") == self.next_id:
                return message

    async def initialize(self) -> dict[str, Any]:
        response = await self.request("initialize", INIT)
        await self.send_line(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        return response


async def open_raw(nursery: trio.Nursery, args: list[str], log: Any) -> RawClient:
    proc = await nursery.start(partial(
        trio.run_process, [PYTHON, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=log, cwd=CWD, env=server_env(), check=False))
    return RawClient(proc)
