"""Acceptance (issue 17): long-lived instances stay evenly placed as workers come and go.

12 consumers that never suspend (each always finds a message on its own channel) on 3 worker
processes; then a 4th worker joins, then one of the first three is SIGKILLed. Each time the
consumers end up within one of an even split over the live workers, each runs on one worker
at a time (the ledger records every message once), and consumption never stops for longer
than the takeover of the killed worker's consumers (the longest gap between two consecutive
messages of one consumer is printed: about the lease, 2 s). The bound asserted is half the
idle claim fallback (30 s): generous for a loaded machine, yet it fails when a consumer that
was handed back or taken over is picked up only by a worker's fallback claim instead of at
once (by its hint, or the takeover check/lease expiry).
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from typing import Any

import pytest
import trio

from romancy_trio import open_app

from ._procs import stop
from .conftest import Backend
from .placement_proc import FLOWS, LEDGER_DDL, config, placed_consumer, start_worker

pytestmark = pytest.mark.slow

CONSUMERS = 12
BACKLOG = 600


async def _placement(app: Any) -> Counter[str]:
    rows = await app.store.db.fetchall(
        f"SELECT lease_owner, status FROM {app.config.schema}.workflow_instances "
        "WHERE workflow_name = 'placed_consumer'")
    return Counter(owner if status == "running" else f"({status})" for owner, status in rows)


def _even(placement: Counter[str], live: list[str]) -> bool:
    low, high = CONSUMERS // len(live), -(-CONSUMERS // len(live))
    return (set(placement) == set(live) and sum(placement.values()) == CONSUMERS
            and all(low <= placement[w] <= high for w in live))


async def _until_even(app: Any, live: list[str], seconds: float = 60.0) -> Counter[str]:
    with trio.fail_after(seconds):
        while not _even(placement := await _placement(app), live):
            await trio.sleep(0.1)
    return placement


async def test_consumers_spread_evenly_as_workers_join_and_die(pg_backend: Backend) -> None:
    schema = pg_backend.config.schema
    url = pg_backend.url
    procs: dict[str, Any] = {}
    async with open_app(url, workflows=FLOWS, config=config(schema), run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        try:
            for name in ("w1", "w2", "w3"):
                procs[name] = start_worker(url, schema, name)
            ids = [await app.start(placed_consumer, f"ch{n}", instance_id=f"consumer-{n}")
                   for n in range(CONSUMERS)]
            with trio.fail_after(60):  # all subscribed, waiting on empty channels
                while (await _placement(app))["(waiting)"] != CONSUMERS:
                    await trio.sleep(0.05)
            for n in range(CONSUMERS):
                await app.publish_many(f"ch{n}", list(range(BACKLOG)))
            print("\n3 workers:", dict(await _until_even(app, ["w1", "w2", "w3"])))
            procs["w4"] = start_worker(url, schema, "w4")
            print("w4 joined:", dict(await _until_even(app, ["w1", "w2", "w3", "w4"])))
            victim = "w1"
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=10)
            live = [w for w in ("w1", "w2", "w3", "w4") if w != victim]
            print(f"{victim} killed:", dict(await _until_even(app, live)))
            rows = await app.store.db.fetchall(
                "SELECT instance_id, message, at FROM ledger ORDER BY instance_id, at")
        finally:
            for proc in procs.values():
                stop(proc)
    per_message = Counter((iid, message) for iid, message, _ in rows)
    assert max(per_message.values()) == 1, "a message consumed twice"
    gaps: dict[str, float] = {}
    last: dict[str, float] = {}
    for iid, _, at in rows:
        if iid in last:
            gaps[iid] = max(gaps.get(iid, 0.0), at - last[iid])
        last[iid] = at
    assert set(gaps) == set(ids)
    times = sorted(at for _, _, at in rows)
    overall = max(b - a for a, b in itertools.pairwise(times))
    print(f"longest pause of consumption as a whole: {overall:.3f} s")
    longest = max(gaps.values())
    print(f"longest gap between two messages of one consumer: {longest:.3f} s "
          f"(median of the consumers' longest gaps {sorted(gaps.values())[len(gaps) // 2]:.3f} s)")
    assert longest < config(schema).fallback_interval / 2, "a consumer waited for the fallback"
