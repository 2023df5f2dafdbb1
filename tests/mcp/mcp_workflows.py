"""Workflows the MCP tests serve (imported by the server subprocess with --workflows)."""

from __future__ import annotations

from dataclasses import dataclass

from romancy_trio import (
    ActivityContext,
    RetryPolicy,
    WorkflowContext,
    activity,
    wait_event,
    workflow,
)


@dataclass
class Order:
    order_id: str
    cents: int


@dataclass
class Receipt:
    order_id: str
    charged: int
    charge_id: str


@activity
async def mcp_charge(ctx: ActivityContext, order: Order) -> str:
    return f"ch_{order.order_id}"


@workflow
async def mcp_checkout(ctx: WorkflowContext, order: Order) -> Receipt:
    """Charge an order and return the receipt."""
    return Receipt(order.order_id, order.cents, await mcp_charge(ctx, order))


@workflow
async def mcp_greet(ctx: WorkflowContext, name: str, excited: bool = False) -> str:
    """Say hello to someone."""
    return f"hello {name}{'!' if excited else ''}"


@workflow
async def mcp_awaits_payment(ctx: WorkflowContext, order_id: str) -> dict[str, object]:
    """Wait for the payment.completed event of an order."""
    paid = await wait_event(ctx, "payment.completed", timeout=120)
    return {"order_id": order_id, "cents": paid.data["cents"], "by": paid.source}


@activity
async def mcp_reserve(ctx: ActivityContext, item: str) -> str:
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS mcp_reserved (item TEXT, released INT)")
    await ctx.db.execute("INSERT INTO mcp_reserved VALUES (?, 0)", (item,))
    return f"r-{item}"


@mcp_reserve.compensation
async def mcp_release(ctx: ActivityContext, item: str, reservation: str) -> None:
    await ctx.db.execute("UPDATE mcp_reserved SET released = 1 WHERE item = ?", (item,))


@workflow
async def mcp_hold(ctx: WorkflowContext, item: str) -> str:
    """Reserve an item, then wait (for a cancel) for the item.released event."""
    await mcp_reserve(ctx, item)
    await wait_event(ctx, "item.never", timeout=600)
    return "kept"


@activity(retry=RetryPolicy.no_retries())
async def mcp_explode(ctx: ActivityContext, reason: str) -> str:
    raise ValueError(reason)


@workflow
async def mcp_fails(ctx: WorkflowContext, reason: str) -> str:
    """Always fails, in an activity."""
    return await mcp_explode(ctx, reason)
