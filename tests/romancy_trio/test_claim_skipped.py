"""A claim skips the instances another transaction holds locked (``SKIP LOCKED``). Whoever
made such an instance claimable has notified already, so the worker must learn from the claim
itself that it has to look again, not wait for the fallback re-check (an hour away here).

The PgBouncer leg of the docs examples met it: a receiver whose suspension found a message
was made pending again while a publish's wake-up (``FOR UPDATE`` on the waiting receivers)
held its row; the worker's claim skipped it and it stayed pending for the fallback's 30 s."""

from __future__ import annotations

import dataclasses

import trio

from romancy_trio import WorkflowContext, WorkflowStatus, open_app, workflow
from romancy_trio.storage import Tx

from .conftest import Backend


@workflow
async def skipped_once(ctx: WorkflowContext) -> str:
    return "ran"


async def test_an_instance_locked_when_the_worker_claims_it_runs_once_unlocked(
        server_backend: Backend) -> None:
    b = server_backend
    config = dataclasses.replace(b.config, fallback_interval=3600.0)
    async with open_app(b.url, workflows=[skipped_once], config=config,
                        run_workers=False) as client:
        iid = await client.start(skipped_once)  # pending: nothing here claims it
        locked, release = trio.Event(), trio.Event()

        async def hold_its_row() -> None:
            """As a concurrent write does (a publish's wake-up), for as long as it is told."""
            async def lock(tx: Tx) -> None:
                row = await tx.fetchone(client.store.waits.w.lock_instance, {"iid": iid})
                assert row is not None and row[0] == WorkflowStatus.PENDING
                locked.set()
                await release.wait()

            await client.store.db.run_transaction(lock)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_its_row)
            await locked.wait()
            async with open_app(b.url, workflows=[skipped_once], config=config) as worker:
                with trio.fail_after(30):  # its first claim has looked, and skipped it
                    while (stats := worker.statistics()) is None or stats.claims < 1:
                        await trio.sleep(0.01)
                assert (await worker.status(iid)).status is WorkflowStatus.PENDING
                release.set()  # no notification follows: nothing else says it is there
                assert await worker.result(iid, timeout=30) == "ran"
