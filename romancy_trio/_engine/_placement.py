"""Placement of long-lived instances: the task that keeps them spread evenly over the workers.

The sans-IO part (loads in announcements, who takes the excess) is in ``_peers``. Here: which
running instances count as long-lived, when this worker tells its peers that its load changed,
and when it marks some of them to be handed back (the run stops at its next suspension point
and the scheduler releases it with a placement hint naming the peer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import trio

from ..storage import Lease
from ._peers import Peers


class Movable(Protocol):
    """What placement reads and sets on a running instance (the scheduler's entry)."""

    lease: Lease
    since: float
    lost: bool
    cancelling: bool
    handback: str | None


def long_lived(running: Iterable[Movable], age: float | None) -> list[Movable]:
    """Instances running here without suspending for ``age`` s or more (none if None), not
    already being handed back, lost or cancelled."""
    if age is None:
        return []
    since = trio.current_time() - age
    return [e for e in running
            if e.since <= since and e.handback is None and not e.lost and not e.cancelling]


async def place_long_lived(peers: Peers, running: Callable[[], Iterable[Movable]],
                           announce: Callable[[], Awaitable[None]], age: float,
                           member_interval: float) -> None:
    """Tell the peers when this worker's load changes; when it runs more than its share and
    its view of the live peers has not changed for a tick, mark the excess to be handed over,
    then wait for the loads to settle (the moved instances to count where they went) before
    looking again: a bounded number of moves per change, and no ping-pong."""
    tick = age / 4
    fresh_within = 1.5 * member_interval
    announced, view, view_since, quiet_until = 0, frozenset[str](), 0.0, 0.0
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        mine = long_lived(running(), age)
        if len(mine) != announced:
            announced = len(mine)
            await announce()
        fresh = frozenset(peers.fresh(now, fresh_within))
        if fresh != view:
            view, view_since = fresh, now
            continue
        if now - view_since < tick or now < quiet_until:
            continue
        targets = peers.excess_targets(len(mine), now, fresh_within=fresh_within)
        if not targets:
            continue
        movable = sorted(mine, key=lambda e: e.lease.instance_id)
        for entry, peer in zip(movable, targets, strict=False):
            entry.handback = peer
        quiet_until = now + age + 2 * tick
