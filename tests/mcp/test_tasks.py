"""MCP tasks (2025-11-25) backed by workflow instances survive a restart of the server."""

from __future__ import annotations

import uuid
from typing import IO

import mcp_types as types
import pytest
import trio

from romancy_trio import AppConfig, Event, open_app

from ._raw import RawClient, open_raw
from .conftest import Db

pytestmark = pytest.mark.slow

RELATED = "io.modelcontextprotocol/related-task"


async def started(nursery: trio.Nursery, db: Db, log: object) -> RawClient:
    client = await open_raw(nursery, db.server_args(), log)
    await client.initialize()
    return client


async def test_task_survives_server_kill_and_restart(db: Db, server_log: IO[str]) -> None:
    async with trio.open_nursery() as nursery:
        first = await started(nursery, db, server_log)
        created = await first.request("tools/call", {
            "name": "mcp_awaits_payment_start", "arguments": {"order_id": "T-1"},
            "task": {"ttl": 60000}})
        task = created["result"]["task"]
        task_id = task["taskId"]
        types.CreateTaskResult.model_validate(created["result"], by_name=False)  # SDK's model
        assert task["status"] == "working" and task["ttl"] is None
        assert task["createdAt"] and task["lastUpdatedAt"] and task["pollInterval"] > 0
        assert created["result"]["_meta"][RELATED] == {"taskId": task_id}
        got = await first.request("tasks/get", {"taskId": task_id})
        types.GetTaskResult.model_validate(got["result"], by_name=False)
        assert got["result"]["taskId"] == task_id
        assert got["result"]["status"] == "working"

        first.proc.kill()  # SIGKILL: the task lives in the database, not in the process
        with trio.fail_after(30):
            await first.proc.wait()

        second = await started(nursery, db, server_log)
        again = await second.request("tasks/get", {"taskId": task_id})
        assert again["result"]["status"] == "working"
        assert again["result"]["createdAt"] == task["createdAt"]

        async with open_app(db.url, config=AppConfig(schema=db.schema),
                            run_workers=False) as app:
            with trio.fail_after(60):
                while (await app.status(task_id)).status != "waiting":
                    await trio.sleep(0.05)
            await app.send_event(Event(type="payment.completed", source="psp",
                                       id=str(uuid.uuid4()), data={"cents": 5}))
        result = await second.request("tasks/result", {"taskId": task_id}, timeout=60)
        payload = result["result"]
        types.CallToolResult.model_validate(payload, by_name=False)
        assert payload["isError"] is False
        assert payload["structuredContent"]["result"] == {
            "order_id": "T-1", "cents": 5, "by": "psp"}
        assert payload["_meta"][RELATED] == {"taskId": task_id}
        done = await second.request("tasks/get", {"taskId": task_id})
        assert done["result"]["status"] == "completed"
        second.proc.kill()


async def test_task_cancel_unknown_ids_and_forbidden_tools(db: Db, server_log: IO[str]) -> None:
    async with trio.open_nursery() as nursery:
        client = await started(nursery, db, server_log)
        created = await client.request("tools/call", {
            "name": "mcp_hold_start", "arguments": {"item": "vase"}, "task": {}})
        task_id = created["result"]["task"]["taskId"]
        with trio.fail_after(60):
            while (await client.request("tools/call", {
                    "name": "mcp_hold_status", "arguments": {"instance_id": task_id}})
                   )["result"]["structuredContent"]["status"] != "waiting":
                await trio.sleep(0.05)
        cancelled = await client.request("tasks/cancel", {"taskId": task_id})
        types.CancelTaskResult.model_validate(cancelled["result"], by_name=False)
        assert cancelled["result"]["status"] == "cancelled"  # compensations ran first
        twice = await client.request("tasks/cancel", {"taskId": task_id})
        assert twice["error"]["code"] == -32602 and "already ended" in twice["error"]["message"]
        outcome = await client.request("tasks/result", {"taskId": task_id})
        assert outcome["result"]["isError"] is True
        assert "cancelled" in outcome["result"]["content"][0]["text"]

        failing = await client.request("tools/call", {
            "name": "mcp_fails_start", "arguments": {"reason": "bad luck"}, "task": {}})
        failed_id = failing["result"]["task"]["taskId"]
        failed = await client.request("tasks/result", {"taskId": failed_id})
        assert failed["result"]["isError"] is True  # what mcp_fails_result would answer
        assert "ValueError: bad luck" in failed["result"]["content"][0]["text"]
        status = await client.request("tasks/get", {"taskId": failed_id})
        assert status["result"]["status"] == "failed"
        assert "bad luck" in status["result"]["statusMessage"]

        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            unknown = await client.request(method, {"taskId": "no-such-task"})
            assert unknown["error"]["code"] == -32602, method
        no_task = await client.request("tools/call", {
            "name": "mcp_hold_status", "arguments": {"instance_id": task_id}, "task": {}})
        assert no_task["error"]["code"] == -32601
        rejected = await client.request("tools/call", {
            "name": "mcp_greet_start", "arguments": {"name": 1}, "task": {}})
        assert rejected["result"]["isError"] is True  # not accepted: no task, no instance
        assert "task" not in rejected["result"] and "resultType" not in rejected["result"]
        async with open_app(db.url, config=AppConfig(schema=db.schema),
                            run_workers=False) as app:
            assert sorted(i.workflow_name for i in await app.list_instances()) == [
                "mcp_fails", "mcp_hold"]
        client.proc.kill()


def envelope(*, tasks: bool) -> dict[str, object]:
    """The per-request ``_meta`` of the 2026-07-28 protocol (no initialize handshake)."""
    caps = {"extensions": {"io.modelcontextprotocol/tasks": {}}} if tasks else {}
    return {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": caps}


async def test_tasks_extension_of_the_2026_protocol(db: Db, server_log: IO[str]) -> None:
    async with trio.open_nursery() as nursery:
        client = await open_raw(nursery, db.server_args(), server_log)
        discover = await client.request("server/discover", {"_meta": envelope(tasks=True)})
        assert "io.modelcontextprotocol/tasks" in discover["result"]["capabilities"][
            "extensions"]
        plain = await client.request("tools/call", {  # no extension declared: no task
            "name": "mcp_greet_start", "arguments": {"name": "P"}, "_meta": envelope(tasks=False)})
        assert plain["result"]["resultType"] == "complete"
        created = await client.request("tools/call", {
            "name": "mcp_greet_start", "arguments": {"name": "T"}, "_meta": envelope(tasks=True)})
        task = created["result"]
        assert task["resultType"] == "task"
        assert task["status"] in ("working", "completed")  # mcp_greet is quick: it may be done
        assert task["ttlMs"] is None and task["pollIntervalMs"] > 0
        assert task["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "romancy-trio"
        with trio.fail_after(60):
            while True:
                got = (await client.request("tasks/get", {
                    "taskId": task["taskId"], "_meta": envelope(tasks=True)}))["result"]
                if got["status"] != "working":
                    break
                await trio.sleep(0.05)
        assert got["status"] == "completed"
        assert got["result"]["structuredContent"]["result"] == "hello T"  # carried by tasks/get
        rejected = await client.request("tools/call", {
            "name": "mcp_greet_start", "arguments": {"name": 1}, "_meta": envelope(tasks=True)})
        assert rejected["result"]["resultType"] == "complete"
        assert rejected["result"]["isError"] is True
        assert "parameter 'name'" in rejected["result"]["content"][0]["text"]
        for method, extra in (("tasks/cancel", {}), ("tasks/update", {"inputResponses": {}})):
            ack = await client.request(method, {"taskId": task["taskId"], **extra,
                                                "_meta": envelope(tasks=True)})
            assert ack["result"]["resultType"] == "complete", method
            unknown = await client.request(method, {"taskId": "nope", **extra,
                                                    "_meta": envelope(tasks=True)})
            assert unknown["error"]["code"] == -32602, method
        client.proc.kill()
