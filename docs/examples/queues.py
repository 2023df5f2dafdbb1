# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import (ActivityContext, WorkflowCancelledError, WorkflowContext, activity,
                          open_app, workflow)

@activity(transactional=False)
async def call_partner_api(ctx: ActivityContext, customer: str) -> str:
    await trio.sleep(0.05)
    return f"synced {customer}"

@workflow
async def sync_customer(ctx: WorkflowContext, customer: str) -> str:
    return await call_partner_api(ctx, customer)

async def main() -> None:
    async with open_app() as app:
        # at most 3 at once across every worker, 1 per tenant, 20 starts per second
        await app.declare_queue("partner", concurrency=3, partition_concurrency=1,
                                rate=(20, 1.0))
        ids = [await app.enqueue("partner", sync_customer, f"c{n}", partition_key=f"t{n % 4}",
                                 priority=10 if n == 7 else 0)  # c7 goes first
               for n in range(8)]
        print([(s.queue, s.waiting + s.running) for s in await app.queue_statistics()])
        # behind c0 and c4 in tenant t0's line: still queued, so cancelling takes it out of
        # the queue - it never runs, and its dedup_id is free again at once
        extra = await app.enqueue("partner", sync_customer, "c8", partition_key="t0",
                                  dedup_id="c8")
        await app.cancel(extra)
        try:
            await app.result(extra, timeout=30)
        except WorkflowCancelledError:
            print("c8 cancelled while queued")
        ids.append(await app.enqueue("partner", sync_customer, "c8", partition_key="t0",
                                     dedup_id="c8"))
        print([await app.result(i, timeout=30) for i in ids])

trio.run(main)
