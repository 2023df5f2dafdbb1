# tested on: sqlite, postgres, mysql
import sys
from collections import Counter

import trio
from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow

@activity
async def where(ctx: ActivityContext) -> str:
    return ctx.worker_id

@workflow
async def which_worker(ctx: WorkflowContext) -> str:
    return await where(ctx)

async def main() -> None:
    config = AppConfig(placement="pack")  # every worker of the group says the same
    client = "--client" in sys.argv[1:]  # starts workflows, runs none
    async with open_app(config=config, run_workers=not client) as app:
        ids = [await app.start(which_worker) for _ in range(20)]
        print(Counter([await app.result(iid, timeout=30) for iid in ids]))
        if "--serve" in sys.argv[1:]:  # keep working for the others until Ctrl+C
            print("serving; Ctrl+C stops this worker", flush=True)
            await trio.sleep_forever()

trio.run(main)
