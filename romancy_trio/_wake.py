"""Waiting on several notify watches at once (the sweeps that more than one topic wakes)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from romancy_notify import Watch


async def wait_any(watches: Sequence[Watch], timeout: float | None = None) -> None:
    """Return when any of ``watches`` wakes (a notification, a gap or its fallback timer) or
    after ``timeout`` seconds. What was pending on each is taken: the caller re-reads the
    rows either way, so one look serves every wakeup that arrived before it."""
    if [w for w in watches if w.wait_nowait() is not None]:
        await trio.lowlevel.checkpoint()
        return
    async with trio.open_nursery() as nursery:

        async def one(watch: Watch) -> None:
            await watch.wait(timeout)
            nursery.cancel_scope.cancel()

        for watch in watches:
            nursery.start_soon(one, watch)
