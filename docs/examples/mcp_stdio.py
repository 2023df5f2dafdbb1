# tested on: sqlite, postgres, mysql
import os
import sys

import trio
from mcp import ClientSession, StdioServerParameters, stdio_client

async def main() -> None:
    server = StdioServerParameters(
        command=sys.executable, env=dict(os.environ),  # ROMANCY_TRIO_URL, if set, is used
        args=["-m", "romancy_trio", "mcp", "--workflows", "romancy_trio.demo"])
    async with stdio_client(server) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        print([tool.name for tool in (await mcp.list_tools()).tools])
        order = {"order": {"order_id": "M-1", "amount_cents": 990}, "instance_id": "mcp-M-1"}
        started = await mcp.call_tool("process_order_start", order)
        iid = started.structured_content["instance_id"]
        done = await mcp.call_tool("process_order_result", {"instance_id": iid})
        print(done.structured_content["result"])  # {'order_id': 'M-1', 'charge_id': ...}

trio.run(main)
