# tested by: tests/romancy_trio/test_failover.py
import os

import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

URL = os.environ.get(
    "ROMANCY_TRIO_URL",
    "postgresql://app@db1:5432,db2:5432/shop?target_session_attrs=read-write")

@activity
async def charge(ctx: ActivityContext, order_id: str) -> int:
    # the charge and this activity's history record commit in one transaction
    await ctx.db.execute("INSERT INTO charges (order_id, cents) VALUES (?, ?)", (order_id, 4200))
    return 4200

@workflow
async def checkout(ctx: WorkflowContext, order_id: str) -> int:
    return await charge(ctx, order_id)

async def serve() -> None:
    async with open_app(URL, wait_for_database=60) as app:
        # a start with a chosen id is idempotent: safe to repeat after an error
        await app.start(checkout, "order-1", instance_id="order-1")
        print("charged", await app.result("order-1", timeout=60))

trio.run(serve)
