"""A small order workflow: ``python -m romancy_trio demo [--url postgresql://...]``.

Run it twice: the second run finds the first run's instance already completed and does not
charge the card again - the instance id is the idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)


@dataclass
class Order:
    order_id: str
    amount_cents: int


@dataclass
class Receipt:
    order_id: str
    charge_id: str
    shipped: bool


@activity
async def charge_card(ctx: ActivityContext, order: Order) -> str:
    # Transactional: this INSERT commits together with the activity's history record.
    await ctx.db.execute(
        "CREATE TABLE IF NOT EXISTS demo_charges (order_id VARCHAR(64) PRIMARY KEY, cents INTEGER)"
    )
    await ctx.db.execute(
        "INSERT INTO demo_charges VALUES (?, ?)", (order.order_id, order.amount_cents)
    )
    return f"ch_{order.order_id}"


@activity(transactional=False)
async def ship(ctx: ActivityContext, order_id: str) -> bool:
    print(f"  shipping {order_id} (an external call: at-least-once)")
    return True


@workflow
async def process_order(ctx: WorkflowContext, order: Order) -> Receipt:
    charge_id = await charge_card(ctx, order)
    shipped = await ship(ctx, order.order_id)
    return Receipt(order.order_id, charge_id, shipped)


async def run_demo(url: str, *, schema: str = "romancy") -> None:
    """``schema``: where the library keeps its tables on PostgreSQL (``demo_charges`` goes to
    the connection's own search_path, like any SQL of the application)."""
    config = AppConfig(schema=schema)
    async with open_app(url, workflows=[process_order, charge_card, ship], config=config) as app:
        iid = await app.start(process_order, Order("A-1001", 4200), instance_id="order-A-1001")
        receipt = await app.result(iid, timeout=30)
        info = await app.status(iid)
        print(f"workflow {iid}: {info.status}")
        print(f"  result: {receipt}")
