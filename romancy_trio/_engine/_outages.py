"""Riding out a database outage in a worker's long-running loops, one way for all of them.

The child sweep, queue admission, schedules, housekeeping, the channel sweep (the worker's
`Outages`, `Scheduler.outages`) and the outbox relayer's claim loop (its own) each run their
database work as a step through `Outages.ride_out`: a `StorageUnavailableError` (the
server stopped, restarting, failing over, a link cut) interrupts the step, which then waits
for the database with every other waiting task (`DatabaseProbe`: one probe, close attempts
at first, then backing off, jittered) and runs again from the start - each step is one or
more whole transactions, so nothing is half done. A step that fails again although the
database answered the probe (a standby that refuses writes) backs off, jittered, up to
``longest_backoff``. Any other error propagates: only the transient storage error is
absorbed. An outage is said in two lines however many loops it interrupts: one warning when
the first loop is interrupted, one when the last of them has gone on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from .._errors import StorageUnavailableError

log = logging.getLogger("romancy_trio.scheduler")

T = TypeVar("T")

_FIRST_BACKOFF = 0.05
"""Seconds before a step runs again when it failed although the database answered the probe;
doubled (jittered) per failure up to ``longest_backoff``."""


class Outages:
    """``wait_for_database``: returns once the database answers again (the worker's shared
    `DatabaseProbe`)."""

    def __init__(self, wait_for_database: Callable[[], Awaitable[None]], *,
                 longest_backoff: float, rng: random.Random,
                 logger: logging.Logger = log) -> None:
        self._wait_for_database = wait_for_database
        self._log = logger
        self._longest_backoff = longest_backoff
        self._rng = rng
        self._interrupted: set[str] = set()  # the loops the current outage interrupted
        self._since: float | None = None  # trio time its first interruption was seen
        self.count = 0
        """Outages the loops rode out (or are riding out): each interrupted one or more."""

    async def ride_out(self, loop: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step`` until it gets through a database outage; ``loop`` names the loop."""
        backoff = 0.0  # the first retry runs as soon as the database answers
        while True:
            try:
                result = await step()
            except StorageUnavailableError as exc:
                self._failed(loop, exc)
                await self._wait_for_database()
                await trio.sleep(backoff * self._rng.uniform(0.5, 1.0))
                backoff = min(max(2 * backoff, _FIRST_BACKOFF), self._longest_backoff)
                continue
            self._went_on(loop)
            return result

    def _failed(self, loop: str, exc: StorageUnavailableError) -> None:
        if self._since is None:
            self._since = trio.current_time()
            self.count += 1
            self._log.warning("%s interrupted by the database (%s); the loops wait for it to "
                              "answer and go on", loop, exc)
        elif loop not in self._interrupted:
            self._log.debug("%s interrupted by the database too: %s", loop, exc)
        self._interrupted.add(loop)

    def _went_on(self, loop: str) -> None:
        if loop not in self._interrupted:
            return
        self._interrupted.discard(loop)
        if not self._interrupted and self._since is not None:
            self._log.warning("the database answers again: the loops went on after %.1f s",
                              trio.current_time() - self._since)
            self._since = None
