"""Channel scenarios across worker processes: a competing channel (exactly-once check) and a
broadcast fan-out.

This process opens an App without workers (``run_workers=False``) to start the consumer
workflows and publish; ``workers`` separate processes (``loadtests._worker``) run the workflows.
Times come from the database: a message's ``published_at`` (stamped in the publishing
transaction) and the ``created_at`` of the ``message_received`` history row written in the
transaction that consumed it - the same clock, since every process runs on this machine.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
import trio

from romancy_trio import (
    ActivityContext,
    App,
    AppConfig,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    receive,
    recur,
    subscribe,
    workflow,
)

from ._common import (
    CheckFailed,
    Result,
    Run,
    drop_schema,
    new_schema,
    percentile,
    require,
    with_search_path,
)
from ._worker import check_alive, open_workers

EFFECTS_DDL = ("CREATE TABLE IF NOT EXISTS bench_effects "
               "(message_id BIGINT NOT NULL, instance_id TEXT NOT NULL, worker_id TEXT NOT NULL)")
RECUR_EVERY = 50
DELIVERED = "SELECT count(*) FROM workflow_history WHERE kind = 'message_received'"
UNCLAIMED = "SELECT count(*) FROM channel_messages WHERE claimed_by IS NULL"
"""Progress: on the partial index of unclaimed messages, so that watching costs the system
under test next to nothing (a count of the claimed ones scanned the whole table 5 times a
second)."""
STALL_TIMEOUT = 60.0
"""A broadcast message not delivered to every subscriber this long after publishing is a lost
wake-up: twice the workers' fallback re-check interval (AppConfig.fallback_interval, 30 s)."""
PACED_IN_FLIGHT = 64
"""Paced publishing: publishes under way at once, at most (each on its own task)."""
SAFETY_TIMEOUT = 120.0
"""receive() timeout in the workflows: only so a broken run cannot leave them waiting forever."""


@activity
async def bench_consumed(ctx: ActivityContext, message_id: int) -> None:
    """The side effect: one row per message taken, in the activity's transaction."""
    await ctx.db.execute(
        "INSERT INTO bench_effects (message_id, instance_id, worker_id) VALUES (?, ?, ?)",
        (message_id, ctx.instance_id, ctx.worker_id))


@workflow
async def bench_consumer(ctx: WorkflowContext, state: dict[str, Any]) -> int:
    """Competing consumer: takes messages until it takes a ``stop`` one; recurs every 50
    messages so its history stays bounded. Returns how many work messages it took. With
    ``state["effects"]`` it acts on each message in a transactional activity; without, the
    receipt recorded in its history is the whole point."""
    channel = state["channel"]
    if ctx.run_no == 1:
        await subscribe(ctx, channel, "competing")
    taken: int = state.get("taken", 0)
    for _ in range(RECUR_EVERY):
        msg = await receive(ctx, channel, timeout=SAFETY_TIMEOUT)
        if msg.data.get("stop"):
            return taken
        if state["effects"]:
            await bench_consumed(ctx, msg.id)
        taken += 1
    await recur(ctx, {**state, "taken": taken})
    return taken


@workflow
async def bench_subscriber(ctx: WorkflowContext, args: dict[str, Any]) -> list[int]:
    """Broadcast subscriber: returns the ``n`` of every message it received, in order."""
    await subscribe(ctx, args["channel"], "broadcast")
    got = []
    for _ in range(args["count"]):
        msg = await receive(ctx, args["channel"], timeout=SAFETY_TIMEOUT)
        got.append(msg.data["n"])
    return got


WORKFLOWS: list[Any] = [bench_consumer, bench_consumed, bench_subscriber]


async def _rows(app: App, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    async with app.store.db.transaction() as tx:
        return [tuple(r) for r in await tx.fetchall(query, params)]


async def _received(app: App) -> list[tuple[int, float, str, str]]:
    """Every message_received history row (live and archived by ``recur``):
    (message id, consumed at, instance, worker)."""
    rows = await _rows(
        app,
        "SELECT payload, created_at, instance_id, worker_id FROM workflow_history "
        "WHERE kind = 'message_received' UNION ALL "
        "SELECT payload, created_at, instance_id, worker_id FROM workflow_history_archive "
        "WHERE kind = 'message_received'")
    return [(orjson.loads(p)["id"], float(at), iid, w) for p, at, iid, w in rows]


async def _published_at(app: App, channel: str) -> dict[int, float]:
    rows = await _rows(app, "SELECT id, published_at FROM channel_messages WHERE channel = %s",
                       (channel,))
    return {int(i): float(at) for i, at in rows}


async def _diagnose(app: App) -> str:
    """Where the instances are, for a stall report."""
    statuses = await _rows(app, "SELECT status, lease_owner IS NOT NULL, count(*) "
                                "FROM workflow_instances GROUP BY 1, 2 ORDER BY 1, 2")
    waits = await _rows(app, "SELECT kind, key, count(*) FROM workflow_waits GROUP BY 1, 2")
    return (f"instances (status, leased, n): {statuses}; waits (kind, key, n): {waits}; "
            f"scheduler of this process: {app.statistics()}")


async def _until_status(app: App, ids: list[str], status: WorkflowStatus, timeout: float) -> None:
    with trio.fail_after(timeout):
        for iid in ids:
            while (await app.status(iid)).status is not status:
                await trio.sleep(0.05)


async def competing(run: Run) -> list[Result]:
    """Receive + a transactional side effect per message (``bench_consumer``): every message is
    received by exactly one consumer and its side-effect row exists exactly once."""
    return [await _competing(run, effects=True)]


async def competing_delivery(run: Run) -> list[Result]:
    """Delivery alone (``bench_consumer`` without effects): each message received, and
    recorded in the receiver's history, by exactly one consumer; no per-message activity."""
    return [await _competing(run, effects=False)]


async def competing_latency(run: Run) -> list[Result]:
    """Publish -> receive latency: single-message publishes at each of ``latency_rates``
    per second (moderate, then heavy), consumers mostly waiting, so each message wakes one
    through NOTIFY (claim, replay, take)."""
    return [await _competing(run, effects=False, rate=rate) for rate in run.sizes.latency_rates]


async def _competing(run: Run, *, effects: bool,
                     rate: float | None = None) -> Result:
    """``messages`` work messages on one competing channel, taken by ``consumers`` workflows
    spread over ``workers`` processes: published in batches of ``publish_batch`` as fast as
    possible, or one by one at ``rate`` per second. Exactly once: every message is received
    by exactly one consumer (history rows, live and archived), the consumers' counts add up,
    and with ``effects`` every side-effect row exists exactly once."""
    s = run.sizes
    m, channel = (s.latency_messages if rate else s.messages), "bench.jobs"
    how = f"paced {rate:g}/s" if rate else f"batches of {s.publish_batch}"
    what = "receive + tx effect" if effects else "receive only"
    name = f"competing ({what}), {s.workers} procs x {s.consumers} consumers, {how}"
    schema = new_schema()
    config = AppConfig(schema=schema)
    try:
        async with open_app(with_search_path(run.dsn, schema), workflows=WORKFLOWS, config=config,
                            run_workers=False) as app:
            async with app.store.db.transaction() as tx:
                await tx.execute(EFFECTS_DDL)
            async with open_workers(with_search_path(run.dsn, schema), schema, __name__, s.workers,
                                    pool=s.worker_pool) as workers:
                consumers = [await app.start(bench_consumer,
                                             {"channel": channel, "effects": effects})
                             for _ in range(s.consumers)]
                await _until_status(app, consumers, WorkflowStatus.WAITING, 60)
                bar = run.progress(name, m)
                work_ids: list[int] = []
                paced_s: list[float] = []  # how long the paced publishing took
                in_flight = trio.Semaphore(PACED_IN_FLIGHT)
                batches = iter(range(0, m, s.publish_batch))

                async def publisher() -> None:
                    for start in batches:
                        jobs = [{"job": i} for i in range(start, min(m, start + s.publish_batch))]
                        work_ids.extend(await app.publish_many(channel, jobs))

                async def publish_one(i: int) -> None:
                    async with in_flight:
                        work_ids.append(await app.publish(channel, {"job": i}))

                async def paced_publisher() -> None:
                    """Open loop: each publish starts on schedule in its own task, whether
                    or not earlier ones have finished. A loop that awaited each publish
                    would slow down with the system under test and hide its latency."""
                    assert rate is not None
                    t_start = trio.current_time()
                    async with trio.open_nursery() as nursery:
                        for i in range(m):
                            await trio.sleep_until(t_start + i / rate)
                            nursery.start_soon(publish_one, i)
                    paced_s.append(trio.current_time() - t_start)

                async def watch_progress() -> None:
                    while True:
                        published = len(work_ids)  # before the count: done is never early
                        done = published - (await _rows(app, UNCLAIMED))[0][0]
                        bar.update(done)
                        if published >= m and done >= m:
                            return
                        await trio.sleep(0.2)

                t0 = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch_progress)
                    if rate:
                        nursery.start_soon(paced_publisher)
                    else:
                        for _ in range(4):
                            nursery.start_soon(publisher)
                bar.close()
                wall = time.perf_counter() - t0
                stop_ids = [await app.publish(channel, {"stop": True})
                            for _ in range(s.consumers)]
                totals = [await app.result(iid, timeout=60) for iid in consumers]
                check_alive(workers)
            received = await _received(app)
            published = await _published_at(app, channel)
            effects_seen = Counter(
                r[0] for r in await _rows(app, "SELECT message_id FROM bench_effects"))
    finally:
        drop_schema(run.dsn, schema)
    taken = Counter(r[0] for r in received)
    expected = Counter(work_ids + stop_ids)
    duplicated = sum(1 for c in taken.values() if c > 1)
    require(len(work_ids) == m, f"{name}: published {len(work_ids)} of {m}")
    require(not duplicated, f"{name}: {duplicated} messages received more than once")
    require(taken == expected, f"{name}: {len(expected - taken)} messages never received, "
                               f"{len(taken - expected)} unexpected")
    if effects:
        require(effects_seen == Counter(work_ids),
                f"{name}: side effects not exactly once ({sum(effects_seen.values())} rows "
                f"for {m})")
    require(sum(totals) == m, f"{name}: consumers report {sum(totals)} of {m}")
    work = set(work_ids)
    lat = [(at - published[mid]) * 1000 for mid, at, _, _ in received if mid in work]
    span = max(at for mid, at, _, _ in received if mid in work) - min(
        published[i] for i in work_ids)
    per_worker = "/".join(
        str(sum(1 for mid, _, _, w in received if w == wk.worker_id and mid in work))
        for wk in workers)
    checked = f"{m} msgs exactly once" + (" + effects" if effects else "")
    extra: dict[str, Any] = {"per_worker": per_worker, "wall_s": round(wall, 2)}
    if rate:
        extra["published_per_s"] = round(m / paced_s[0])
        require(m / paced_s[0] >= 0.95 * rate,
                f"{name}: published only {m / paced_s[0]:.0f}/s ({PACED_IN_FLIGHT} publishes "
                f"in flight at most): the latencies were not measured at {rate:g}/s")
    return Result(name, m, span, lat, extra, checked=checked, rate=not rate)


async def broadcast(run: Run) -> list[Result]:
    """``broadcasts`` messages, each delivered to all ``subscribers`` workflows spread over
    ``workers`` processes; one message in flight at a time (the next is published once every
    subscriber has the previous one). Latency = published -> consumed, per delivery; fan-out =
    published -> the last subscriber consumed it; throughput = deliveries / time spent
    delivering. Every subscriber must get every message once, in order."""
    s = run.sizes
    k, subs, channel = s.broadcasts, s.subscribers, "bench.news"
    name = f"broadcast fan-out, {s.workers} procs x {subs} subscribers"
    schema = new_schema()
    config = AppConfig(schema=schema)
    try:
        async with open_app(with_search_path(run.dsn, schema), workflows=WORKFLOWS, config=config,
                            run_workers=False) as app:
            async with open_workers(with_search_path(run.dsn, schema), schema, __name__, s.workers,
                                    pool=s.worker_pool) as workers:
                ids = [await app.start(bench_subscriber, {"channel": channel, "count": k})
                       for _ in range(subs)]
                await _until_status(app, ids, WorkflowStatus.WAITING, 60)
                bar = run.progress(name, k * subs)
                for i in range(k):  # one message in flight: publish, wait for all deliveries
                    await app.publish(channel, {"n": i})
                    got = 0
                    with trio.move_on_after(STALL_TIMEOUT) as stall:
                        while (got := (await _rows(app, DELIVERED))[0][0]) < (i + 1) * subs:
                            bar.update(got)
                            await trio.sleep(0.02)
                    if stall.cancelled_caught:
                        check_alive(workers)
                        raise CheckFailed(f"{name}: message {i} reached {got - i * subs} of "
                                          f"{subs} subscribers in {STALL_TIMEOUT:g}s; "
                                          f"{await _diagnose(app)}")
                    bar.update(got)
                with trio.fail_after(60):
                    results = [await app.result(iid) for iid in ids]
                bar.close()
                check_alive(workers)
            received = await _received(app)
            published = await _published_at(app, channel)
    finally:
        drop_schema(run.dsn, schema)
    wrong = sum(1 for r in results if r != list(range(k)))
    per_sub = Counter(iid for _, _, iid, _ in received)
    require(wrong == 0, f"{name}: {wrong} subscribers did not get all {k} messages in order")
    require(len(received) == k * subs and set(per_sub.values()) == {k},
            f"{name}: {len(received)} deliveries recorded, expected {k * subs}")
    lat = [(at - published[mid]) * 1000 for mid, at, _, _ in received]
    last: dict[int, float] = {}
    for mid, at, _, _ in received:
        last[mid] = max(at, last.get(mid, at))
    fan_out = [(last[mid] - published[mid]) * 1000 for mid in published]
    span = sum(fan_out) / 1000
    return [Result(name, k * subs, span, lat, {
        "msgs": k, "fanout_p50_ms": round(percentile(fan_out, 50), 1),
        "per_worker": "/".join(str(sum(1 for r in received if r[3] == w.worker_id))
                               for w in workers)},
        checked=f"{subs}x{k} in order, once")]
