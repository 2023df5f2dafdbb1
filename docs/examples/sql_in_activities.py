# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

@activity
async def stock(ctx: ActivityContext, sku: str, qty: int) -> int:
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS stock (sku VARCHAR(64) PRIMARY KEY, qty INT)")
    await ctx.db.execute("DELETE FROM stock WHERE sku = ?", (sku,))
    await ctx.db.execute("INSERT INTO stock VALUES (?, ?)", (sku, qty))
    await ctx.db.execute("UPDATE stock SET qty = qty - :n WHERE sku = :sku", {"n": 1, "sku": sku})
    row = await ctx.db.fetchone("SELECT qty FROM stock WHERE sku LIKE ?", ("%" + sku[-2:],))
    return row[0]

@workflow
async def restock(ctx: WorkflowContext, sku: str) -> int:
    return await stock(ctx, sku, 10)

async def main() -> None:
    async with open_app() as app:
        print(await app.run(restock, "SKU-42", timeout=30))  # 9

trio.run(main)
