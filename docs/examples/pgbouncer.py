# tested on: sqlite, postgres
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

@activity
async def reserve(ctx: ActivityContext, order_id: str) -> int:
    # your own SQL in ctx.db runs in the activity's transaction, like the library's
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS pooled_stock (order_id TEXT PRIMARY KEY)")
    await ctx.db.execute(
        "INSERT INTO pooled_stock (order_id) VALUES (?) ON CONFLICT DO NOTHING", (order_id,))
    row = await ctx.db.fetchone("SELECT count(*) FROM pooled_stock")
    return int(row[0]) if row else 0

@workflow
async def place_order(ctx: WorkflowContext, order_id: str) -> str:
    reserved = await reserve(ctx, order_id)
    return f"order {order_id} placed ({reserved} reserved in all)"

async def main() -> None:
    # ROMANCY_TRIO_URL: the pooler; ROMANCY_TRIO_LISTENER_URL: the database itself
    async with open_app() as app:
        print(await app.run(place_order, "A-1", instance_id="order-A-1", timeout=30))

trio.run(main)
