# tested on: sqlite, postgres, mysql
import uuid

import trio
from romancy_trio import (Event, EventTimeoutError, WorkflowContext, open_app, sleep,
                          wait_event, workflow)

@workflow
async def awaits_payment(ctx: WorkflowContext, order_id: str) -> str:
    try:
        paid = await wait_event(ctx, "payment.completed", timeout=60)
    except EventTimeoutError:
        return "cancelled: not paid in time"
    await sleep(ctx, 0.2)  # durable: the worker is released while it sleeps
    return f"{order_id} paid {paid.data['cents']} by {paid.source}"

async def main() -> None:
    async with open_app() as app:
        iid = await app.start(awaits_payment, "A-7")
        while (await app.status(iid)).status != "waiting":
            await trio.sleep(0.01)
        # (source, id) identifies an event: the same one sent twice is recorded once
        receipt = await app.send_event(Event(type="payment.completed", source="psp",
                                             id=str(uuid.uuid4()), data={"cents": 990}))
        print(receipt.delivered_to)
        print(await app.result(iid, timeout=30))

trio.run(main)
