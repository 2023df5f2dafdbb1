"""The SDK's client over streamable HTTP against ``python -m romancy_trio mcp --bind``: real
hypercorn (Trio mode) on 127.0.0.1, MCP at /mcp beside the CloudEvents intake and JSON API,
behind the bearer token."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import IO

import httpx
import httpx2
import pytest
import trio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from ._sdk import call_ok, text, wait_status
from .conftest import CWD, PYTHON, Db, server_env

pytestmark = [
    pytest.mark.slow,
    # the SDK's HTTP client (httpx2 streams under Trio) leaves response generators to the
    # garbage collector when a session ends; that is the client's, not the server's, business
    pytest.mark.filterwarnings(r"ignore:Async generator 'httpcore2\.:ResourceWarning"),
    pytest.mark.filterwarnings(r"ignore:Async generator 'httpx2\.:ResourceWarning"),
]

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def http_server(db: Db, log: IO[str], token: str | None = TOKEN) -> AsyncIterator[int]:
    """The server subprocess; yields its port (printed on its first line)."""
    auth = ["--token", token] if token else []
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(partial(
            trio.run_process, [PYTHON, *db.server_args("--bind", "127.0.0.1:0", *auth)],
            stdout=subprocess.PIPE, stderr=log, cwd=CWD, env=server_env(), check=False))
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(60):
            while b"\n" not in line:
                chunk = await proc.stdout.receive_some(1024)
                assert chunk, "the server exited before serving"
                line += chunk
        words = line.decode().split()
        assert words[:2] == ["serving", "MCP"], line
        yield int(words[-1].rsplit(":", 1)[1].split("/")[0])
        proc.terminate()  # SIGTERM: a graceful stop
        with trio.fail_after(30):
            assert await proc.wait() == 0


@asynccontextmanager
async def http_session(port: int, headers: dict[str, str], path: str = "/mcp"
                       ) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with streamable_http_client(f"http://127.0.0.1:{port}{path}",
                                          http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def test_tools_over_streamable_http_with_the_token(db: Db, server_log: IO[str]) -> None:
    async with http_server(db, server_log) as port, http_session(port, AUTH) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert len(tools) == 20 and "mcp_checkout_start" in tools
        iid = (await call_ok(session, "mcp_greet_start",
                             {"name": "Bo", "instance_id": "http-1"}))["instance_id"]
        assert iid == "http-1"
        done = await call_ok(session, "mcp_greet_result", {"instance_id": iid, "wait_seconds": 30})
        assert done["result"] == "hello Bo"
        assert (await call_ok(session, "mcp_greet_status", {"instance_id": iid}))["status"] == \
            "completed"

        held = (await call_ok(session, "mcp_hold_start", {"item": "desk"}))["instance_id"]
        await wait_status(session, "mcp_hold", held, lambda s: s == "waiting")
        cancel = await call_ok(session, "mcp_hold_cancel", {"instance_id": held})
        assert cancel["cancel_requested"]
        await wait_status(session, "mcp_hold", held, lambda s: s == "cancelled")

        # a workflow waiting for an event: the CloudEvent goes to the same server's intake
        waiting = (await call_ok(session, "mcp_awaits_payment_start",
                                 {"order_id": "H-1"}))["instance_id"]
        await wait_status(session, "mcp_awaits_payment", waiting, lambda s: s == "waiting")
        headers = {**AUTH, "ce-specversion": "1.0", "ce-id": str(uuid.uuid4()),
                   "ce-source": "psp", "ce-type": "payment.completed",
                   "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            posted = await client.post("/", headers=headers, content=b'{"cents": 12}')
        assert posted.status_code == 202, posted.text
        result = await call_ok(session, "mcp_awaits_payment_result",
                               {"instance_id": waiting, "wait_seconds": 30})
        assert result["result"] == {"order_id": "H-1", "cents": 12, "by": "psp"}
        bad = await session.call_tool("mcp_greet_start", {"name": 3})
        assert bad.is_error and "parameter 'name'" in text(bad)


async def test_missing_or_wrong_token_is_refused_and_bad_bodies_answered(
        db: Db, server_log: IO[str]) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"accept": "application/json, text/event-stream"}
    async with http_server(db, server_log) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                refused = await client.post("/mcp", json=initialize,
                                            headers={**accept, **headers})
                assert refused.status_code == 401, refused.text
                assert refused.headers["www-authenticate"] == "Bearer"
            allowed = await client.post("/mcp", json=initialize, headers={**accept, **AUTH})
            assert allowed.status_code == 200, allowed.text
            headers = {**accept, **AUTH, "content-type": "application/json"}
            for body, code, ident in ((b"{nope", -32700, None), (b"[1, 2]", -32600, None),
                                      (b'{"id": 9, "method": "ping"}', -32600, 9)):
                bad = await client.post("/mcp", content=body, headers=headers)
                assert bad.status_code == 400, body
                assert bad.json()["error"]["code"] == code and bad.json()["id"] == ident
            again = await client.post("/mcp", json=initialize, headers={**accept, **AUTH})
            assert again.status_code == 200  # still serving
        with pytest.raises(BaseExceptionGroup) as caught:  # the SDK client cannot connect
            async with http_session(port, {}):
                pass
        assert caught.group_contains(MCPError, depth=None)


async def test_without_a_token_a_local_server_refuses_foreign_hosts(db: Db, server_log: IO[str]
                                                                    ) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"accept": "application/json, text/event-stream"}
    async with http_server(db, server_log, token=None) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            rebound = await client.post("/mcp", json=initialize,
                                        headers={**accept, "host": "evil.example"})
            assert rebound.status_code == 421  # DNS rebinding protection
            page = await client.post("/mcp", json=initialize,
                                     headers={**accept, "origin": "http://evil.example"})
            assert page.status_code == 403
            local = await client.post("/mcp", json=initialize, headers=accept)
            assert local.status_code == 200, local.text
