"""Packing (``AppConfig.placement="pack"``, issue #22): when this worker counts as full, and
whether it hears the work channel.

Every wake-up goes to the *taker*, the first worker (in an order all agree on, `Peers.roles`)
that does not say it is full; the other workers do not LISTEN to the work channel
(`Hub.set_heard`; the standby does where it cannot watch the taker's session), so a moderate
load costs the CPU of one process rather than waking all of them for every workflow. Full means
every slot or pooled transaction is taken, or the process used most of a core over the last tick
(CPU time, not wall time: a process that waits for a core on a machine with none spare is not
full, since another process would not run sooner): a worker that is CPU-bound hands new work to
the next one, so packing does not cap a group at one core. With hysteresis: full at
``BUSY_FULL`` or more, not full again below ``BUSY_FREE``.

The standby takes over when the taker dies. Where the database shows the workers' sessions
(PostgreSQL: their worker locks), it does not hear the work channel either: `watch_taker`
checks the taker's session every ``interval`` and, once it is gone in two checks in a row (a
dropped connection comes straight back), drops the taker from its view - it is then the taker
itself, LISTENs and rescans. Elsewhere it hears the wake-ups and claims what the taker left
after ``peer_claim_delay``. A taker whose event loop is blocked (CPU-bound code that never
awaits) takes nothing meanwhile, and cannot say so until it runs again.

Nothing here is needed for correctness: the claim is what decides, a worker that hears nothing
still claims at its fallback re-check, and a stale view costs a delay, never a wake-up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from romancy_notify import Hub

from .._errors import StorageUnavailableError
from ._peers import Peers

BUSY_FULL = 0.85
"""CPU seconds per second of this process (all its threads) from which a worker says it is
full."""
BUSY_FREE = 0.6
"""... and below which it says it no longer is."""
TICK = 0.25
"""How often (s) a packing worker measures its CPU use and applies its role."""
CONFIRM_AFTER = 0.1
"""A taker found without a session is looked at again this soon (s) before it is dropped."""


@dataclass
class Fullness:
    """Whether a worker is full, from its free room and its CPU use over a tick (sans-IO)."""

    full: bool = False

    def update(self, *, busy: float, free: int) -> bool:
        """Take one tick's measurement; True if the state changed."""
        was = self.full
        if self.full:
            self.full = free <= 0 or busy >= BUSY_FREE
        else:
            self.full = free <= 0 or busy >= BUSY_FULL
        return self.full != was


async def pack_loop(peers: Peers, hub: Hub, topic: str, room: Callable[[], int],
                    announce: Callable[[], Awaitable[None]]) -> None:
    """Every `TICK`: update this worker's fullness (announced at once when it changes) and
    hear the work ``topic`` only while `Peers.hears_work` says so."""
    fullness = Fullness()
    heard = True  # a hub starts hearing every topic
    last_at, last_cpu = time.perf_counter(), time.process_time()
    while True:
        await trio.sleep(TICK)
        now, cpu = time.perf_counter(), time.process_time()
        busy = (cpu - last_cpu) / max(now - last_at, 1e-9)
        last_at, last_cpu = now, cpu
        if fullness.update(busy=busy, free=room()):
            peers.full = fullness.full
            await announce()
        want = peers.hears_work()
        if want != heard:
            hub.set_heard(topic, want)
            heard = want

async def watch_taker(peers: Peers, alive: Callable[[str], Awaitable[bool | None]],
                      interval: float) -> None:
    """While this worker is the standby: check every ``interval`` whether the taker's session
    lives, and drop the taker from the view once two checks in a row find none. Returns at
    once where the dialect cannot tell (the standby then hears the work channel)."""
    peers.standby_listens = False
    suspect: str | None = None
    try:
        while True:
            await trio.sleep(CONFIRM_AFTER if suspect is not None else interval)
            taker, standby = peers.roles()
            if standby != peers.worker_id or taker is None:
                suspect = None
                continue
            try:
                found = await alive(taker)
            except StorageUnavailableError:
                continue  # the database is away: not a sign that the taker is
            if found is None:
                return
            if found:
                suspect = None
            elif suspect == taker:
                peers.forget(taker)
                suspect = None
            else:
                suspect = taker
    finally:
        peers.standby_listens = True
