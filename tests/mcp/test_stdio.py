"""The SDK's MCP client over stdio against ``python -m romancy_trio mcp`` (a subprocess)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import IO, Any

import httpx
import psycopg
import pytest
import trio
from mcp.shared.exceptions import MCPError

from romancy_trio import AppConfig, open_app
from romancy_trio.asgi import serve_http

from ._sdk import call_ok, stdio_session, text, wait_status
from .conftest import Db

pytestmark = pytest.mark.slow


async def test_initialize_lists_four_tools_per_workflow_with_schemas(db: Db, server_log: IO[str]
                                                                     ) -> None:
    async with stdio_session(db, server_log) as session:
        init = session.initialize_result
        assert init is not None and init.server_info.name == "romancy-trio"
        assert init.capabilities.tools is not None
        assert init.capabilities.tasks is not None  # 2025-11-25 core tasks
        assert init.capabilities.tasks.requests.tools.call is not None  # type: ignore[union-attr]
        tools = {t.name: t for t in (await session.list_tools()).tools}
    for wf in ("mcp_checkout", "mcp_greet", "mcp_awaits_payment", "mcp_hold", "mcp_fails"):
        assert {f"{wf}_{k}" for k in ("start", "status", "result", "cancel")} <= set(tools)
    assert len(tools) == 20

    start = tools["mcp_checkout_start"]
    assert start.description is not None and "Charge an order" in start.description  # docstring
    order = start.input_schema["properties"]["order"]
    assert order["type"] == "object" and order["required"] == ["order_id", "cents"]
    assert order["properties"]["cents"]["type"] == "integer"
    assert start.input_schema["required"] == ["order"]
    assert start.input_schema["properties"]["instance_id"]["type"] == "string"
    assert start.execution is not None and start.execution.task_support == "optional"

    greet = tools["mcp_greet_start"].input_schema
    assert greet["required"] == ["name"]  # 'excited' has a default
    assert greet["properties"]["excited"]["type"] == "boolean"

    out = tools["mcp_checkout_result"].output_schema
    assert out is not None and out["type"] == "object"
    receipt = out["properties"]["result"]
    assert set(receipt["properties"]) == {"order_id", "charged", "charge_id"}
    assert tools["mcp_checkout_result"].input_schema["properties"]["wait_seconds"]["maximum"] == 60
    assert tools["mcp_hold_status"].annotations is not None
    assert tools["mcp_hold_status"].annotations.read_only_hint is True


async def test_start_status_result_cancel(db: Db, server_log: IO[str]) -> None:
    async with stdio_session(db, server_log) as session:
        first = await call_ok(session, "mcp_greet_start",
                              {"name": "Ann", "excited": True, "instance_id": "mcp_greet-ann"})
        assert first["instance_id"] == "mcp_greet-ann"
        again = await call_ok(session, "mcp_greet_start",
                              {"name": "Ann", "excited": True, "instance_id": "mcp_greet-ann"})
        assert again["instance_id"] == "mcp_greet-ann"  # idempotent: the same instance
        done = await call_ok(session, "mcp_greet_result",
                             {"instance_id": "mcp_greet-ann", "wait_seconds": 30})
        assert done == {"instance_id": "mcp_greet-ann", "status": "completed", "done": True,
                        "result": "hello Ann!"}
        status = await call_ok(session, "mcp_greet_status", {"instance_id": "mcp_greet-ann"})
        assert status["status"] == "completed" and status["error"] is None
        assert status["created_at"] <= status["updated_at"]

        receipt = await call_ok(session, "mcp_checkout_start",
                                {"order": {"order_id": "A-1", "cents": 4200}})
        result = await call_ok(session, "mcp_checkout_result",
                               {"instance_id": receipt["instance_id"], "wait_seconds": 30})
        assert result["result"] == {"order_id": "A-1", "charged": 4200, "charge_id": "ch_A-1"}

        # a waiting workflow: "still running", then cancel (the compensation runs)
        held = (await call_ok(session, "mcp_hold_start", {"item": "lamp"}))["instance_id"]
        await wait_status(session, "mcp_hold", held, lambda s: s == "waiting")
        pending = await call_ok(session, "mcp_hold_result",
                                {"instance_id": held, "wait_seconds": 0.2})
        assert pending == {"instance_id": held, "status": "waiting", "done": False}
        cancelled = await session.call_tool("mcp_hold_cancel", {"instance_id": held})
        assert not cancelled.is_error and "compensations" in text(cancelled)
        assert cancelled.structured_content is not None
        assert cancelled.structured_content["cancel_requested"] is True
        await wait_status(session, "mcp_hold", held, lambda s: s == "cancelled")
        with psycopg.connect(db.url) as conn:
            rows = conn.execute("SELECT item, released FROM mcp_reserved").fetchall()
        assert rows == [("lamp", 1)]  # the compensation ran

        # a failed workflow: its status carries the error, its result is a tool error
        failed = (await call_ok(session, "mcp_fails_start", {"reason": "boom"}))["instance_id"]
        outcome = await session.call_tool("mcp_fails_result",
                                          {"instance_id": failed, "wait_seconds": 30})
        assert outcome.is_error
        assert text(outcome) == (f"instance {failed!r} of 'mcp_fails' failed (in activity "
                                 "'mcp_explode'): ValueError: boom")
        info = await call_ok(session, "mcp_fails_status", {"instance_id": failed})
        assert info["status"] == "failed"
        assert info["error"]["type"] == "ValueError" and info["error"]["message"] == "boom"
        assert info["error"]["activity_name"] == "mcp_explode"

        # finished instances and unknown ids: clear tool errors
        twice = await session.call_tool("mcp_hold_cancel", {"instance_id": held})
        assert twice.is_error and "already ended" in text(twice)
        gone = await session.call_tool("mcp_hold_result", {"instance_id": held})
        assert gone.is_error and "cancelled" in text(gone)
        unknown = await session.call_tool("mcp_greet_status", {"instance_id": "no-such-id"})
        assert unknown.is_error and "no instance 'no-such-id'" in text(unknown)
        foreign = await session.call_tool("mcp_hold_status", {"instance_id": "mcp_greet-ann"})
        assert foreign.is_error and "belongs to workflow 'mcp_greet'" in text(foreign)


async def test_event_posted_to_cloudevents_endpoint_completes_workflow(db: Db, server_log: IO[str]
                                                                      ) -> None:
    config = AppConfig(schema=db.schema)
    async with open_app(db.url, config=config, run_workers=False) as app, \
            trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_http, app))  # real hypercorn, Trio mode
        async with stdio_session(db, server_log) as session:
            iid = (await call_ok(session, "mcp_awaits_payment_start",
                                 {"order_id": "A-7"}))["instance_id"]
            await wait_status(session, "mcp_awaits_payment", iid, lambda s: s == "waiting")
            headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()),
                       "ce-source": "psp", "ce-type": "payment.completed",
                       "content-type": "application/json"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                posted = await client.post("/", headers=headers, content=b'{"cents": 990}')
            assert posted.status_code == 202, posted.text
            assert posted.json()["delivered_to"] == [iid]
            result = await call_ok(session, "mcp_awaits_payment_result",
                                   {"instance_id": iid, "wait_seconds": 30})
            assert result["result"] == {"order_id": "A-7", "cents": 990, "by": "psp"}
        nursery.cancel_scope.cancel()


async def count_instances(db: Db) -> int:
    async with open_app(db.url, config=AppConfig(schema=db.schema), run_workers=False) as app:
        return len(await app.list_instances())


@pytest.mark.parametrize(("tool", "args", "names"), [
    ("mcp_greet_start", {"name": 5}, "parameter 'name'"),
    ("mcp_greet_start", {"name": "x", "excited": "yes"}, "parameter 'excited'"),
    ("mcp_greet_start", {}, "missing argument(s) ['name']"),
    ("mcp_greet_start", {"name": "x", "shout": True}, "unknown argument(s) ['shout']"),
    ("mcp_checkout_start", {"order": {"order_id": "A"}}, "missing field 'cents'"),
    ("mcp_checkout_start", {"order": {"order_id": "A", "cents": "many"}}, "cents"),
    ("mcp_greet_start", {"name": "x", "instance_id": 7}, "argument 'instance_id'"),
])
async def test_bad_arguments_are_tool_errors_and_nothing_is_written(
        db: Db, server_log: IO[str], tool: str, args: dict[str, Any], names: str) -> None:
    async with stdio_session(db, server_log) as session:
        result = await session.call_tool(tool, args)
        assert result.is_error, result
        assert names in text(result)
        assert await count_instances(db) == 0  # a rejected start writes nothing
        ok = await call_ok(session, "mcp_greet_start", {"name": "still serving"})
        assert ok["instance_id"]


async def test_unknown_tool_and_bad_wait_are_reported(db: Db, server_log: IO[str]) -> None:
    async with stdio_session(db, server_log) as session:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("nope_start", {})
        assert caught.value.error.code == -32602 and "nope_start" in caught.value.error.message
        too_long = await session.call_tool("mcp_greet_result",
                                           {"instance_id": "x", "wait_seconds": 3600})
        assert too_long.is_error and "wait_seconds" in text(too_long)
        assert (await call_ok(session, "mcp_greet_start", {"name": "ok"}))["status"]
