"""A worker process for crash and multi-worker tests: ``python -m tests.romancy_trio.worker_proc``.

Arguments: URL SCHEMA WORKER_ID. Environment: ``PLACEMENT=pack`` (`AppConfig.placement`),
``FALLBACK`` (`AppConfig.fallback_interval`), ``HANG_AT`` = activity step at which the activity
writes a marker file (``MARKER_DIR``) and then hangs inside its open transaction, so the test can
SIGKILL the process at a known point. Prints ``ready`` once the app is serving.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    ReceiveTimeoutError,
    RetryPolicy,
    WorkflowContext,
    activity,
    open_app,
    receive,
    subscribe,
    wait_event,
    workflow,
)


@activity
async def effect(ctx: ActivityContext, step: int) -> int:
    await ctx.db.execute(
        "INSERT INTO effects (instance_id, step, worker_id) VALUES (?, ?, ?)",
        (ctx.instance_id, step, ctx.worker_id),
    )
    if os.environ.get("HANG_AT") == str(step):
        Path(os.environ["MARKER_DIR"], f"{ctx.instance_id}.{step}").write_text(ctx.worker_id)
        await trio.sleep_forever()
    return step * 10


@workflow
async def steps(ctx: WorkflowContext, count: int) -> list[int]:
    return [await effect(ctx, n) for n in range(1, count + 1)]


async def _hang_if(var: str, value: int, name: str) -> None:
    if os.environ.get(var) == str(value):
        Path(os.environ["MARKER_DIR"], name).write_text("reached")
        await trio.sleep_forever()


@activity(retry=RetryPolicy.no_retries())
async def book(ctx: ActivityContext, step: int, fail: bool) -> str:
    if fail:
        raise ValueError(f"step {step} failed")
    await ctx.db.execute(
        "INSERT INTO effects (instance_id, step, worker_id) VALUES (?, ?, ?)",
        (ctx.instance_id, step, ctx.worker_id),
    )
    await _hang_if("HANG_BOOK", step, f"{ctx.instance_id}.book{step}")
    return f"booking-{step}"


@book.compensation
async def unbook(ctx: ActivityContext, step: int, fail: bool, booking: str) -> None:
    assert booking == f"booking-{step}"
    await ctx.db.execute(
        "INSERT INTO effects (instance_id, step, worker_id) VALUES (?, ?, ?)",
        (ctx.instance_id, -step, ctx.worker_id),
    )
    await _hang_if("HANG_UNDO", step, f"{ctx.instance_id}.undo{step}")


@workflow
async def saga(ctx: WorkflowContext, plan: dict[str, int]) -> str:
    for step in range(1, plan["steps"] + 1):
        await book(ctx, step, step == plan.get("fail_at"))
    return "booked"


@activity(retry=RetryPolicy(max_attempts=5, initial_interval=2.0, backoff_coefficient=1.0))
async def flaky(ctx: ActivityContext, succeed_on: int) -> str:
    started = time.time()
    attempt = 1 + len([k for k in await _attempt_keys(ctx)])
    if attempt < succeed_on:
        raise ConnectionError(f"started={started!r} attempt={attempt}")
    return f"ok on {attempt}"


async def _attempt_keys(ctx: ActivityContext) -> list[str]:
    rows = await ctx.db.fetchall(
        "SELECT h.key FROM workflow_history h "  # h.key: a reserved word on MySQL otherwise
        "WHERE h.instance_id = ? AND h.kind = 'attempt_failed'",
        (ctx.instance_id,),
    )
    return [r[0] for r in rows]


@workflow
async def retries(ctx: WorkflowContext, succeed_on: int) -> str:
    return await flaky(ctx, succeed_on)


@workflow
async def awaits_go(ctx: WorkflowContext) -> Any:
    return (await wait_event(ctx, "go")).data


ALL = [steps, effect, saga, book, retries, flaky, awaits_go]


EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS effects (instance_id TEXT, step INTEGER, worker_id TEXT)"


async def main(url: str, schema: str, worker_id: str) -> None:
    fallback = float(os.environ.get("FALLBACK", "5"))
    config = AppConfig(
        schema=schema, lease_ttl=2.0, heartbeat_interval=0.5, fallback_interval=fallback,
        placement="pack" if os.environ.get("PLACEMENT") == "pack" else "spread",
    )

    async with open_app(url, worker_id=worker_id, workflows=ALL, config=config):
        print("ready", flush=True)
        await trio.sleep_forever()




@activity
async def consumed(ctx: ActivityContext, message_id: int) -> None:
    await ctx.db.execute(
        "INSERT INTO effects (instance_id, step, worker_id) VALUES (?, ?, ?)",
        (ctx.instance_id, message_id, ctx.worker_id))


@workflow
async def consumer(ctx: WorkflowContext, state: dict[str, Any]) -> int:
    """Competing consumer: takes messages until the channel stays empty for a while; recurs
    every 50 messages so its history stays bounded."""
    if ctx.run_no == 1:
        await subscribe(ctx, state["channel"], "competing")
    taken = state.get("taken", 0)
    for _ in range(50):
        try:
            msg = await receive(ctx, state["channel"], timeout=state.get("idle", 3.0))
        except ReceiveTimeoutError:
            return taken
        await consumed(ctx, msg.id)
        taken += 1
    await ctx.recur({**state, "taken": taken})
    return taken


ALL.extend([consumer, consumed])


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
