# tested on: sqlite, postgres, mysql
import trio

from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow


@activity
async def fraud_check(ctx: ActivityContext, order: str) -> None:
    print(f"checked {order} for fraud")

@activity
async def charge(ctx: ActivityContext, order: str) -> str:
    return f"charged {order}"

@workflow
async def charge_order(ctx: WorkflowContext, order: str) -> str:
    if ctx.patched("fraud-check"):   # new code
        await fraud_check(ctx, order)
    # (else: the old code did no check; instances started before the deploy go on that way)
    return await charge(ctx, order)

async def main() -> None:
    async with open_app() as app:
        # a new instance reaches the patch point for the first time: it takes the new branch
        print(await app.run(charge_order, "A-1", instance_id="patched-A-1", timeout=30))

trio.run(main)
