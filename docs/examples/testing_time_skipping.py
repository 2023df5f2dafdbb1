# tested by: tests/romancy_trio/testing/test_readme_testing.py
from datetime import timedelta

import trio
from trio.testing import MockClock

from romancy_trio import (ActivityContext, Event, EventTimeoutError, WorkflowContext, activity,
                          sleep, testing, wait_event, workflow)


@activity(transactional=False)
async def send_reminder(ctx: ActivityContext, order: str) -> str:
    raise RuntimeError("the test replaces this: no mail leaves a test")


@workflow
async def invoice(ctx: WorkflowContext, order: str) -> str:
    await sleep(ctx, timedelta(days=30).total_seconds())  # payment terms
    try:
        paid = await wait_event(ctx, f"paid.{order}", timeout=timedelta(days=7).total_seconds())
    except EventTimeoutError:
        return await send_reminder(ctx, order)
    return f"paid {paid.data['amount']}"


async def test_invoice() -> None:
    async with testing.environment([invoice, send_reminder]) as env:
        sent: list[str] = []

        async def fake_reminder(ctx: ActivityContext, order: str) -> str:
            sent.append(order)
            return "reminded"

        env.replace(send_reminder, fake_reminder)
        start = env.now()
        # nobody pays: 30 days, then the 7-day timeout, then the reminder
        assert await env.result(await env.app.start(invoice, "A-1")) == "reminded"
        assert sent == ["A-1"] and env.now() - start >= timedelta(days=37)
        # paid on day 33: the event branch
        late = await env.app.start(invoice, "A-2")
        await env.advance(timedelta(days=33))
        await env.until_waiting(late)
        with env.frozen():
            await env.app.send_event(Event(id="pay-A-2", type="paid.A-2", source="psp",
                                           data={"amount": 120}))
        assert await env.result(late) == "paid 120"
    print("a month of invoices tested")


trio.run(test_invoice, clock=MockClock())
