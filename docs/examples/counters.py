# tested on: sqlite, postgres, mysql
import os

import trio
from romancy_trio import (ActivityContext, RetryPolicy, WorkflowContext, activity, open_app,
                          workflow)

class MissingSetting(Exception):
    pass

@activity(retry=RetryPolicy(max_interval=0.5, retry_forever=("MissingSetting",)))
async def send_invoice(ctx: ActivityContext, amount: float) -> str:
    if "INVOICE_SENDER" not in os.environ:
        raise MissingSetting("set INVOICE_SENDER")
    ctx.count("invoices")
    ctx.count("invoiced.eur", amount)
    return f"sent by {os.environ['INVOICE_SENDER']}"

@workflow
async def billing(ctx: WorkflowContext, amounts: list[float]) -> list[str]:
    return [await send_invoice(ctx, a) for a in amounts]

async def main() -> None:
    os.environ.pop("INVOICE_SENDER", None)
    async with open_app() as app:
        iid = await app.start(billing, [12.5, 30.0])
        while (info := await app.status(iid)).error is None:
            await trio.sleep(0.05)
        print("waiting:", info.status, info.error.message)  # running ... set INVOICE_SENDER
        os.environ["INVOICE_SENDER"] = "billing@example.com"  # the operator fixes it
        print(await app.result(iid, timeout=30))
        print((await app.status(iid)).counters)  # {'invoiced.eur': 42.5, 'invoices': 2.0}

trio.run(main)
