"""Packing (``AppConfig.placement="pack"``, issue #22): when this worker counts as full, and
whether it hears the work channel.

Every wake-up goes to the *taker*, the first worker (in an order all agree on, `Peers.roles`)
that does not say it is full; a worker that is neither the taker nor the standby does not
LISTEN to the work channel (`Hub.set_heard`), so a moderate load costs the CPU of one process
rather than waking all of them for every workflow. Full means every slot is taken, or the event
loop was busy for most of the last tick: a worker that is CPU-bound hands new work to the next
one, so packing never caps a group at one core. With hysteresis: full at ``BUSY_FULL`` or
more, not full again below ``BUSY_FREE``.

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
import trio.lowlevel

from romancy_notify import Hub

from .._errors import StorageUnavailableError
from ._peers import Peers

BUSY_FULL = 0.85
"""Fraction of a tick the event loop was busy (not waiting for I/O) from which a worker says
it is full."""
BUSY_FREE = 0.6
"""... and below which it says it no longer is."""
TICK = 0.25
"""How often (s) a packing worker measures its loop and applies its role."""
CONFIRM_AFTER = 0.1
"""A taker found without a session is looked at again this soon (s) before it is dropped."""


class LoopIdle(trio.abc.Instrument):
    """Adds up the time the Trio loop waits for I/O (nothing to run meanwhile)."""

    def __init__(self) -> None:
        self.idle = 0.0
        self._since = 0.0

    def before_io_wait(self, timeout: float) -> None:
        self._since = time.perf_counter()

    def after_io_wait(self, timeout: float) -> None:
        self.idle += time.perf_counter() - self._since


@dataclass
class Fullness:
    """Whether a worker is full, from its free slots and how busy its loop was (sans-IO)."""

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
    hear the work ``topic`` only while this worker is the taker or the standby."""
    idle = LoopIdle()
    fullness = Fullness()
    heard = True  # a hub starts hearing every topic
    trio.lowlevel.add_instrument(idle)
    try:
        last_at, last_idle = time.perf_counter(), 0.0
        while True:
            await trio.sleep(TICK)
            now, now_idle = time.perf_counter(), idle.idle
            busy = 1.0 - (now_idle - last_idle) / max(now - last_at, 1e-9)
            last_at, last_idle = now, now_idle
            if fullness.update(busy=busy, free=room()):
                peers.full = fullness.full
                await announce()
            want = peers.hears_work()
            if want != heard:
                hub.set_heard(topic, want)
                heard = want
    finally:
        trio.lowlevel.remove_instrument(idle)


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
