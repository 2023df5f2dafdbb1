"""Commit -> wake latency through the notify hub, against a plain ``SELECT 1`` round trip.

    python loadtests/notify_latency.py [DSN] [N]

A separate connection commits N transactions, each with one ``notify_tx``; a task waiting on a
wildcard watch stamps the time each key wakes it. One notification in flight at a time, so
nothing coalesces. Prints p50/p99 in milliseconds; asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import uuid
from pathlib import Path
from time import perf_counter

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests._common import DEFAULT_DSN, check_local
from romancy_notify import Hub, notify_tx, open_pg_hub
from romancy_notify.pg import connect


def report(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p50 = ms[len(ms) // 2]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{name:<34} n={len(ms):<5} p50={p50:7.3f} ms  p99={p99:7.3f} ms  "
        f"mean={statistics.fmean(ms):7.3f} ms  max={ms[-1]:7.3f} ms"
    )


async def select1_baseline(dsn: str, n: int) -> list[float]:
    out = []
    async with await connect(dsn, autocommit=True) as conn:
        for _ in range(n):
            t0 = perf_counter()
            await conn.execute("SELECT 1")
            out.append(perf_counter() - t0)
    return out


async def notify_roundtrips(dsn: str, hub: Hub, topic: str, n: int) -> tuple[list[float], ...]:
    woken_at: dict[str, float] = {}
    arrived = trio.Event()
    commit, wake, end_to_end = [], [], []

    async def waiter(task_status: trio.TaskStatus[None]) -> None:
        nonlocal arrived
        with hub.watch(topic) as w:
            task_status.started()
            while True:
                wakeup = await w.wait()
                now = perf_counter()
                for key in wakeup.keys:
                    woken_at[key] = now
                arrived.set()

    async with trio.open_nursery() as nursery, await connect(dsn) as sender:
        await nursery.start(waiter)
        for i in range(n):
            key = f"k{i}"
            t_begin = perf_counter()
            await notify_tx(sender, topic, key)
            t0 = perf_counter()
            await sender.commit()
            t_committed = perf_counter()
            with trio.fail_after(10):
                while key not in woken_at:
                    arrived = trio.Event()
                    await arrived.wait()
            commit.append(t_committed - t0)
            wake.append(woken_at[key] - t0)
            end_to_end.append(woken_at[key] - t_begin)
        nursery.cancel_scope.cancel()
    return commit, wake, end_to_end


async def main(dsn: str, n: int) -> None:
    check_local(dsn)
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    await select1_baseline(dsn, 50)  # warm up
    async with open_pg_hub(dsn, [topic]) as hub:
        await notify_roundtrips(dsn, hub, topic, 50)
        baseline = await select1_baseline(dsn, n)
        commit, wake, end_to_end = await notify_roundtrips(dsn, hub, topic, n)
        stats = hub.statistics()
    print(f"notify latency, {n} notifications, {dsn}")
    report("SELECT 1 round trip (baseline)", baseline)
    report("COMMIT round trip (sender)", commit)
    report("COMMIT start -> watch woken", wake)
    report("pg_notify + COMMIT -> woken", end_to_end)
    print(
        f"hub: received={stats.received} delivered={stats.delivered} "
        f"gaps={stats.gaps} reconnects={stats.reconnects}"
    )


if __name__ == "__main__":
    trio.run(
        main,
        sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DSN,
        int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
    )
