"""Several notify watches waking one loop (the sweeps that more than one topic wakes).

One relay task per watch, for the loop's lifetime (the task count stays flat), sets a flag
that the loop's `Wakeups.wait` takes: every wakeup of any watch (a notification, a gap, its
fallback timer) that arrives before a `wait` - during the loop's sweep too - makes that
`wait` return at once; several of them, once."""

from __future__ import annotations

import math

import trio

from romancy_notify import Watch


class Wakeups:
    def __init__(self) -> None:
        self._woken = trio.Event()

    async def relay(self, watch: Watch) -> None:
        """Run in a task of the loop's nursery: feed ``watch``'s wakeups to `wait`."""
        while True:
            await watch.wait()
            self._woken.set()

    async def wait(self, timeout: float | None = None) -> None:
        """Return once a watch woke since the previous `wait`, or after ``timeout`` s."""
        with trio.move_on_after(math.inf if timeout is None else timeout):
            await self._woken.wait()
        if self._woken.is_set():
            self._woken = trio.Event()
