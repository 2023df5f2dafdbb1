# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, recur, workflow

@activity
async def step(ctx: ActivityContext, n: int) -> int:
    return n + 1

@workflow
async def counter(ctx: WorkflowContext, n: int) -> int:
    n = await step(ctx, n)
    if n < 100:
        await recur(ctx, n)  # archive this run's history, start the next run with n
    return n

async def main() -> None:
    async with open_app() as app:
        iid = await app.start(counter, 0)
        print(await app.result(iid, timeout=60), len(await app.runs(iid)), "runs")

trio.run(main)
