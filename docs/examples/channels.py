# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import (ReceiveTimeoutError, WorkflowContext, open_app, publish, receive,
                          subscribe, workflow)

@workflow
async def worker(ctx: WorkflowContext, name: str) -> list[str]:
    await subscribe(ctx, "jobs", "competing")  # each message to exactly one subscriber
    done = []
    while True:
        try:
            msg = await receive(ctx, "jobs", timeout=0.5)
        except ReceiveTimeoutError:
            return done
        done.append(msg.data)

@workflow
async def producer(ctx: WorkflowContext, count: int) -> None:
    for n in range(count):
        await publish(ctx, "jobs", f"job-{n}", metadata={"by": ctx.instance_id})

async def main() -> None:
    async with open_app() as app:
        workers = [await app.start(worker, name) for name in ("a", "b")]
        await app.run(producer, 10, timeout=30)
        results = [await app.result(w, timeout=30) for w in workers]
        print(sorted(job for r in results for job in r))

trio.run(main)
