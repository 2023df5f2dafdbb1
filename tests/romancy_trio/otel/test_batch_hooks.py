"""``send_events`` (a batch) tells the hooks what ``send_event`` tells them: one
`EventReceived` per instance an event was delivered to, none for a duplicate."""

from __future__ import annotations

import trio

from romancy_trio import Event, WorkflowContext, WorkflowStatus, open_app, wait_event, workflow
from romancy_trio import hooks as h

from ..conftest import Backend
from ..test_outbox import until
from .test_hooks import Recorder


@workflow
async def batch_waiter(ctx: WorkflowContext, kind: str) -> int:
    return int((await wait_event(ctx, kind, timeout=60)).data)


async def test_a_batch_of_events_tells_the_hooks_each_delivery_once(backend: Backend) -> None:
    rec = Recorder()
    async with open_app(backend.url, config=backend.config, workflows=[batch_waiter],
                        hooks=[rec]) as app:
        one = await app.start(batch_waiter, "batch.one")
        two = await app.start(batch_waiter, "batch.two")
        with trio.fail_after(30):
            for iid in (one, two):
                while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                    await trio.sleep(0.02)
        batch = [Event("batch.one", "test://batch", "b-1", data=1),
                 Event("batch.two", "test://batch", "b-2", data=2),
                 Event("batch.none", "test://batch", "b-3", data=3)]  # nobody waits for it
        receipts = await app.send_events(batch)
        assert [r.delivered_to for r in receipts] == [(one,), (two,), ()]
        assert await app.result(one, timeout=30) == 1
        assert await app.result(two, timeout=30) == 2
        again = await app.send_events(batch[:2])  # duplicates: recorded and delivered once
        assert [r.duplicate for r in again] == [True, True]
        await until(lambda: all(rec.kinds(i)[-1:] == ["WorkflowCompleted"] for i in (one, two)),
                    timeout=30)
    received = [e for e in rec.seen if isinstance(e, h.EventReceived)]
    assert sorted((e.instance_id, e.event.type, e.event.id, e.event.source)
                  for e in received) == sorted([
        (one, "batch.one", "b-1", "test://batch"),
        (two, "batch.two", "b-2", "test://batch")])
    assert all(e.worker_id == app.worker_id for e in received)
