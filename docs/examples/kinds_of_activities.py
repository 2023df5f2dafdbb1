# tested on: sqlite, postgres, mysql
import asyncio
import hashlib

import trio
from romancy_trio import (ActivityContext, RetryPolicy, WorkflowContext, activity, open_app,
                          workflow)

hung = {"n": 0}

@activity(transactional=False)
def digest(ctx: ActivityContext, text: str) -> str:
    # a plain def runs in a worker thread: blocking clients (requests, boto3...) belong here
    return hashlib.sha256(text.encode()).hexdigest()[:12]

@activity(loop="asyncio")
async def on_asyncio(ctx: ActivityContext, host: str) -> str:
    # runs on the app's asyncio loop: asyncio-only clients (psycopg's AsyncConnection...) work
    await asyncio.sleep(0)
    return f"{host} looked up on {type(asyncio.get_running_loop()).__name__}"

@activity(timeout=5, retry=RetryPolicy(initial_interval=0.05))
async def sometimes_hangs(ctx: ActivityContext) -> str:
    hung["n"] += 1
    if hung["n"] == 1:
        await trio.sleep_forever()  # cancelled at the timeout: ActivityTimeoutError, retried
    return f"answered on attempt {hung['n']}"

@workflow
async def tour(ctx: WorkflowContext, text: str, host: str = "example.org", *,
               impatient: bool = False) -> list[str]:
    hangs = sometimes_hangs(ctx).with_timeout(0.1 if impatient else 1.0)  # overrides the 5 s
    return [await digest(ctx, text), await on_asyncio(ctx, host), await hangs]

async def main() -> None:
    async with open_app() as app:
        print(await app.run(tour, "hello", impatient=True, timeout=30))

trio.run(main)
