"""The SDK's own client against ``python -m romancy_trio mcp`` as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import IO, Any

import trio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from .conftest import CWD, PYTHON, Db, server_env


@asynccontextmanager
async def stdio_session(db: Db, log: IO[str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=PYTHON, args=db.server_args(), env=server_env(),
                                   cwd=CWD)
    async with stdio_client(params, errlog=log) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def call_ok(session: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def wait_status(session: ClientSession, workflow: str, iid: str,
                      done: Callable[[str], bool], timeout: float = 60) -> dict[str, Any]:
    """Poll ``{workflow}_status`` until ``done(status)``."""
    with trio.fail_after(timeout):
        while True:
            info = await call_ok(session, f"{workflow}_status", {"instance_id": iid})
            if done(info["status"]):
                return info
            await trio.sleep(0.05)
