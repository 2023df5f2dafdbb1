"""Workflows for test_cli.py, importable by the ``romancy-trio`` subprocess (--workflows)."""

from __future__ import annotations

import os

import romancy_trio as rt

FLAG_ENV = "ROMANCY_TEST_CLI_FLAG"
"""A file path: ``cli_charge`` fails until that file exists."""


@rt.activity
async def cli_reserve(ctx: rt.ActivityContext, order: str) -> str:
    return f"R-{order}"


@rt.activity(retry=rt.RetryPolicy(max_attempts=2, initial_interval=0.01))
async def cli_charge(ctx: rt.ActivityContext, order: str) -> int:
    if not os.path.exists(os.environ[FLAG_ENV]):
        raise ConnectionError(f"gateway down for {order}")
    return 42


@rt.workflow
async def cli_order(ctx: rt.WorkflowContext, order: str) -> dict[str, object]:
    reservation = await cli_reserve(ctx, order)
    charged = await cli_charge(ctx, order)
    return {"reservation": reservation, "charged": charged}


@rt.workflow
async def cli_wait(ctx: rt.WorkflowContext, order: str) -> object:
    await cli_reserve(ctx, order)
    event = await rt.wait_event(ctx, "cli.go")
    return event.data
