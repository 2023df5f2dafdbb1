"""An instance still waiting in a concurrency queue is a task that is ``working`` (not an
internal error), and its cancel tool takes it out of the queue. In process: the SDK's
``Client`` connected to the server object."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
from mcp import Client

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
