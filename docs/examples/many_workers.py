# tested on: sqlite, postgres, mysql
import sys

import trio
from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow

@activity
async def square(ctx: ActivityContext, n: int) -> int:
    return n * n

@workflow
async def sum_of_squares(ctx: WorkflowContext, n: int) -> int:
    return sum([await square(ctx, k) for k in range(1, n + 1)])

async def main() -> None:
    config = AppConfig(lease_ttl=5.0)  # a worker cut off from the database for 5 s lets go
    async with open_app(config=config) as app:  # this process is one of the workers
        ids = [await app.start(sum_of_squares, n) for n in range(1, 6)]
        print([await app.result(iid, timeout=30) for iid in ids])
        if "--serve" in sys.argv[1:]:  # keep working for the others until Ctrl+C
            print("serving; Ctrl+C stops this worker", flush=True)
            await trio.sleep_forever()

trio.run(main)
