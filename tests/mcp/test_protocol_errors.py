"""Malformed JSON-RPC frames over stdio get protocol-correct errors; the server keeps serving."""

from __future__ import annotations

from typing import IO

import pytest
import trio

from romancy_trio import AppConfig, open_app
from romancy_trio.mcp import parse_line

from ._raw import open_raw
from .conftest import Db

pytestmark = pytest.mark.slow


def test_parse_line_classifies_frames() -> None:
    assert parse_line(b"   ") is None
    assert b'"code": -32700' in parse_line(b"{nope")  # type: ignore[operator]
    assert b'"code": -32600' in parse_line(b"[1, 2]")  # type: ignore[operator]
    bad = parse_line(b'{"jsonrpc": "1.0", "id": 3, "method": "ping"}')
    assert isinstance(bad, bytes) and b'"id": 3' in bad and b'"code": -32600' in bad


async def test_malformed_frames_get_errors_and_the_server_keeps_serving(
        db: Db, server_log: IO[str]) -> None:
    async with trio.open_nursery() as nursery:
        client = await open_raw(nursery, db.server_args(), server_log)
        early = await client.request("tools/call", {  # before initialize: refused, no task
            "name": "mcp_greet_start", "arguments": {"name": "x"}, "task": {}})
        assert early["error"]["code"] == -32602
        init = await client.initialize()
        assert init["result"]["protocolVersion"] == "2025-11-25"

        await client.send_line(b'{"jsonrpc": "2.0", "id": 1, "method": ')  # not JSON
        parse = await client.receive()
        assert parse["error"]["code"] == -32700 and parse["id"] is None

        await client.send_line(b'{"id": 41, "method": "tools/list"}')  # no "jsonrpc"
        invalid = await client.receive()
        assert invalid["error"]["code"] == -32600 and invalid["id"] == 41

        await client.send_line(b'[{"jsonrpc": "2.0", "id": 2, "method": "ping"}]')  # batch
        assert (await client.receive())["error"]["code"] == -32600

        await client.send_line(b'"just a string"')
        assert (await client.receive())["error"]["code"] == -32600

        await client.send_line(b"x" * (4 * 1024 * 1024 + 10))  # over the line limit
        assert (await client.receive())["error"]["code"] == -32600

        unknown_method = await client.request("tools/destroy", {})
        assert unknown_method["error"]["code"] == -32601

        bad_params = await client.request("tools/call", {"arguments": {}})  # no name
        assert bad_params["error"]["code"] == -32602

        unknown_tool = await client.request("tools/call", {"name": "nope", "arguments": {}})
        assert unknown_tool["error"]["code"] == -32602
        assert "nope" in unknown_tool["error"]["message"]

        wrong_type = await client.request(
            "tools/call", {"name": "mcp_greet_start", "arguments": {"name": ["a"]}})
        assert wrong_type["result"]["isError"] is True  # a tool error, not a protocol one
        assert "parameter 'name'" in wrong_type["result"]["content"][0]["text"]

        listed = await client.request("tools/list", {})  # still serving
        assert len(listed["result"]["tools"]) == 20
        assert client.proc.stdin is not None
        await client.proc.stdin.aclose()  # EOF: the server ends by itself
        with trio.fail_after(30):
            assert await client.proc.wait() == 0
    async with open_app(db.url, config=AppConfig(schema=db.schema), run_workers=False) as app:
        assert await app.list_instances() == []  # nothing was started by any of it
