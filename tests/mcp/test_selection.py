"""Choosing what an McpServer serves: all or selected workflows, descriptions, bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from romancy_trio import (
    ConfigurationError,
    UnknownWorkflowError,
    WorkflowContext,
    open_app,
    workflow,
)
from romancy_trio.mcp import McpServer

from .mcp_workflows import mcp_checkout, mcp_greet


@workflow(name="has space")
async def badly_named(ctx: WorkflowContext) -> None:
    return None


async def test_selected_workflows_and_descriptions(tmp_path: Path) -> None:
    async with open_app(f"sqlite:///{tmp_path / 's.db'}", workflows=[mcp_greet, mcp_checkout],
                        run_workers=False) as app:
        every = McpServer(app)
        assert {t.name for t in every.tools.tools} == {
            f"{wf}_{kind}" for wf in ("mcp_greet", "mcp_checkout")
            for kind in ("start", "status", "result", "cancel")}
        only = McpServer(app, workflows=["mcp_greet"], descriptions={"mcp_greet": "Greets people."},
                         name="greeter", instructions="Be nice.")
        assert sorted(t.name for t in only.tools.tools) == [
            "mcp_greet_cancel", "mcp_greet_result", "mcp_greet_start", "mcp_greet_status"]
        start = next(t for t in only.tools.tools if t.name == "mcp_greet_start")
        assert start.description is not None and "Greets people." in start.description
        assert only.server.name == "greeter" and only.server.instructions == "Be nice."
        with pytest.raises(UnknownWorkflowError, match="nope"):
            McpServer(app, workflows=["nope"])
        with pytest.raises(ConfigurationError, match="descriptions name workflows not served"):
            McpServer(app, workflows=[mcp_greet], descriptions={"mcp_checkout": "x"})
        with pytest.raises(ConfigurationError, match="wait"):
            McpServer(app, max_wait=5, default_wait=10)
    async with open_app(f"sqlite:///{tmp_path / 'b.db'}", workflows=[badly_named],
                        run_workers=False) as app:
        with pytest.raises(ConfigurationError, match="cannot be an MCP tool name"):
            McpServer(app)
