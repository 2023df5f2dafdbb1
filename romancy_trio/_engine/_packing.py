"""Packing (``AppConfig.placement="pack"``, issue #22): when this worker counts as full, and
whether it hears the work channel.

Every wake-up goes to the *taker*, the first worker (in an order all agree on, `Peers.roles`)
that does not say it is full; a worker that is neither the taker nor the standby does not
LISTEN to the work channel (`Hub.set_heard`), so a moderate load costs the CPU of one process
rather than waking all of them for every workflow. Full means every slot is taken, or the event
loop was busy for most of the last tick: a worker that is CPU-bound hands new work to the next
one, so packing never caps a group at one core. With hysteresis: full at ``BUSY_FULL`` or
more, not full again below ``BUSY_FREE``.

Nothing here is needed for correctness: the claim is what decides, a worker that hears nothing
still claims at its fallback re-check, and a stale view (a taker that died) costs the standby's
delay, as any wake-up left to a peer does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
import trio.lowlevel

from romancy_notify import Hub

from ._peers import Peers

BUSY_FULL = 0.85
"""Fraction of a tick the event loop was busy (not waiting for I/O) from which a worker says
it is full."""
BUSY_FREE = 0.6
"""... and below which it says it no longer is."""
TICK = 0.25
"""How often (s) a packing worker measures its loop and applies its role."""


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


async def pack_loop(peers: Peers, hub: Hub, topic: str, free: Callable[[], int],
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
            if fullness.update(busy=busy, free=free()):
                peers.full = fullness.full
                await announce()
            want = peers.hears_work()
            if want != heard:
                hub.set_heard(topic, want)
                heard = want
    finally:
        trio.lowlevel.remove_instrument(idle)
