# tested on: sqlite, postgres, mysql
import trio
from dataclasses import dataclass
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

@dataclass
class Order:
    order_id: str
    cents: int

@activity
async def charge(ctx: ActivityContext, order: Order) -> str:
    # Transactional (the default): this INSERT and the activity's history record commit
    # together, so the charge happens exactly once even if the process dies right after.
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS charges (order_id VARCHAR(64) PRIMARY KEY)")
    await ctx.db.execute("INSERT INTO charges VALUES (?)", (order.order_id,))
    return f"ch_{order.order_id}"

@activity(transactional=False)  # an external call: at-least-once, so make it idempotent
async def notify_customer(ctx: ActivityContext, order_id: str) -> None:
    print(f"mail sent for {order_id}")

@workflow
async def checkout(ctx: WorkflowContext, order: Order) -> str:
    charge_id = await charge(ctx, order)
    await notify_customer(ctx, order.order_id)
    return charge_id

async def main() -> None:
    async with open_app() as app:  # ROMANCY_TRIO_URL, else sqlite:///romancy.db
        # the instance id is an idempotency key: starting it again returns the same instance
        iid = await app.start(checkout, Order("A-1", 4200), instance_id="order-A-1")
        print(await app.result(iid, timeout=30))
        print((await app.status(iid)).status)

trio.run(main)
