# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

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
        print([await app.result(i, timeout=30) for i in ids])

trio.run(main)
