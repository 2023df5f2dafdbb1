# tested on: sqlite, postgres, mysql
import httpx2
import trio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from romancy_trio import WorkflowContext, open_app, workflow
from romancy_trio.asgi import create_asgi_app, serve_asgi
from romancy_trio.mcp import McpServer

TOKEN = "change-me"

@workflow
async def add(ctx: WorkflowContext, a: int, b: int = 1) -> int:
    """Add two numbers, durably."""
    return a + b

async def main() -> None:
    async with open_app() as app, McpServer(app, workflows=[add]).open_http() as endpoint:
        asgi = create_asgi_app(app, bearer_token=TOKEN, mounts={"/mcp": endpoint})
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_asgi, asgi)  # hypercorn, Trio mode
            headers = {"Authorization": f"Bearer {TOKEN}"}  # without it: 401
            async with httpx2.AsyncClient(headers=headers) as http, streamable_http_client(
                    f"http://127.0.0.1:{port}/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as mcp:
                await mcp.initialize()
                started = await mcp.call_tool("add_start", {"a": 2, "b": 40})
                iid = started.structured_content["instance_id"]
                result = await mcp.call_tool("add_result", {"instance_id": iid})
                print(result.structured_content)  # {..., 'done': True, 'result': 42}
            nursery.cancel_scope.cancel()

trio.run(main)
