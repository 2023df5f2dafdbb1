"""In process (the SDK's ``Client`` connected to the server object): an instance still waiting
in a concurrency queue is a task that is ``working`` (not an internal error) and its cancel
tool takes it out of the queue; ``tasks/list`` is deliberately not offered."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from romancy_trio import open_app
from romancy_trio.mcp import McpServer

from ._sdk import call_ok
from .mcp_workflows import mcp_greet


async def test_a_queued_instance_is_a_working_task_and_can_be_cancelled(tmp_path: Path) -> None:
    async with open_app(f"sqlite:///{tmp_path / 'q.db'}", workflows=[mcp_greet],
                        run_workers=False) as app:  # no worker: nothing admits it
        await app.declare_queue("mcp-q", concurrency=1)
        iid = await app.enqueue("mcp-q", mcp_greet, "Queued")
        async with Client(McpServer(app).server, mode="legacy") as client:
            status = await call_ok(client.session, "mcp_greet_status", {"instance_id": iid})
            assert status["status"] == "queued"
            task = await client.session.send_request(
                types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=iid)),
                types.GetTaskResult)
            assert task.status == "working" and "queued" in (task.status_message or "")
            await call_ok(client.session, "mcp_greet_cancel", {"instance_id": iid})
            task = await client.session.send_request(
                types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=iid)),
                types.GetTaskResult)
            assert task.status == "cancelled"
        assert [s.waiting for s in await app.queue_statistics()] in ([], [0])


async def test_tasks_are_not_listed(tmp_path: Path) -> None:
    """One bearer token (or none) does not tell requestors apart, so a list could not be
    limited to the requestor's own tasks: the server declares no ``tasks.list`` (the
    2025-11-25 spec: receivers that cannot identify requestors SHOULD NOT) and answers
    ``tasks/list`` "method not found"; 2026-07-28 dropped the method."""
    async with open_app(f"sqlite:///{tmp_path / 'l.db'}", workflows=[mcp_greet],
                        run_workers=False) as app:
        await app.start(mcp_greet, "Listed?")
        async with Client(McpServer(app).server, mode="legacy") as client:
            tasks = client.server_capabilities.tasks
            assert tasks is not None and tasks.cancel is not None and tasks.list is None
            with pytest.raises(MCPError) as caught:
                await client.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
            assert caught.value.error.code == types.METHOD_NOT_FOUND
