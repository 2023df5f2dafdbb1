"""What the outage drills share: the worker processes' life (`partition_proc`,
`liveness_proc`); for the failover and restart rounds (`failover_proc`, `restart_proc`) the
effect ledger, the workers' note of their listener coming back, and the waits and checks around
one round."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence, Set
from typing import Any

import trio

from romancy_trio import ActivityContext, AppConfig, Event, StorageUnavailableError, open_app

LEDGER_DDL = ("CREATE TABLE IF NOT EXISTS ledger "
              "(instance_id text, step text, worker_id text, at double precision)")
"""The effect ledger, written by transactional activities (in the transaction that records the
activity's result). No unique key: a doubled effect is counted and reported, not an error."""

Effect = tuple[str, str, float]
"""A ledger row: instance id, step, when (time.time())."""


async def record_effect(ctx: ActivityContext, step: str) -> None:
    """In a transactional activity: its effect, in the ledger."""
    await ctx.db.execute(
        "INSERT INTO ledger (instance_id, step, worker_id, at) VALUES (?, ?, ?, ?)",
        (ctx.instance_id, step, ctx.worker_id, time.time()))


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Until ``check()`` is true; `trio.TooSlowError` after ``seconds``."""
    with trio.fail_after(seconds):
        while not await check():
            await trio.sleep(0.02)


async def retrying(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """As an application would: a call that meets the outage is tried again."""
    while True:
        try:
            return await fn(*args)
        except StorageUnavailableError:
            await trio.sleep(0.01)


async def note_reconnects(app: Any, worker_id: str) -> None:
    """In a worker: each time its notify listener is back after losing its connection, record
    ``(worker_id, 'listening', time)`` in the ledger."""
    seen = app.hub.statistics().reconnects
    while True:
        await trio.sleep(0.005)
        stats = app.hub.statistics()
        if stats.reconnects > seen and stats.listening:
            seen, at = stats.reconnects, time.time()
            await retrying(app.store.db.execute,  # the pool may hand out a killed connection
                           "INSERT INTO ledger (instance_id, step, worker_id, at) "
                           "VALUES (%s, 'listening', %s, %s)", (worker_id, worker_id, at))


async def send_go(app: Any, waiters: Collection[str], source: str) -> float:
    """Send each waiter its ``go`` event, all at once, each retried through the outage;
    returns when the last was committed (time.time())."""

    async def send(iid: str) -> None:
        await retrying(app.send_event, Event(type="go", source=source, id=iid, data=iid,
                                             target_instance_id=iid))

    async with trio.open_nursery() as nursery:
        for iid in waiters:
            nursery.start_soon(send, iid)
    return time.time()


async def listeners_back(app: Any, workers: Collection[str], since: float,
                         seconds: float) -> float:
    """Once every worker's listener has noted being back since ``since`` (waiting up to
    ``seconds``): the last of their latest notes (time.time())."""
    db = app.store.db

    async def all_back() -> bool:
        row = await db.fetchone("SELECT count(DISTINCT worker_id) FROM ledger WHERE "
                                "step = 'listening' AND at >= %s", (since,))
        return row is not None and row[0] == len(workers)

    await until(all_back, seconds)
    listening = await db.fetchall("SELECT max(at) FROM ledger WHERE step = 'listening' "
                                  "AND at >= %s GROUP BY worker_id", (since,))
    return float(max(r[0] for r in listening))


def assert_each_effect_once(rows: list[Effect], expected: Set[tuple[str, str]]) -> None:
    """The ledger rows hold exactly the ``expected`` (instance, step) effects, each once."""
    effects = Counter((iid, step) for iid, step, _ in rows)
    assert set(effects) == expected, (
        f"effects lost: {sorted(expected - set(effects))[:10]}, "
        f"unexpected: {sorted(set(effects) - expected)[:10]}")
    doubled = {k: v for k, v in effects.items() if v != 1}
    assert not doubled, f"effects recorded more than once: {doubled}"


async def serve_until_sigterm(url: str, worker_id: str, workflows: Sequence[Any],
                              config: AppConfig) -> None:
    """A worker process's life (in the ``*_proc`` modules): open the app, print ``ready``, and
    on SIGTERM print ``stats leases_lost=<n> started=<n>`` and leave."""
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with open_app(url, worker_id=worker_id, workflows=workflows,
                            config=config) as app:
            print("ready", flush=True)
            async for _ in signals:
                break
            stats = app.statistics()
            assert stats is not None
            print(f"stats leases_lost={stats.leases_lost} started={stats.started}", flush=True)
