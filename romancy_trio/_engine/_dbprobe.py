"""Waiting for the database to answer again: one probe for every task that waits.

Runs interrupted by the database and the claim loop wait here instead of each retrying on its
own; the probe's attempts are close together at first (as the notify listener's reconnects,
see `NotifyConfig.reconnect_delays`), then back off. The probe task runs in the scheduler's
nursery, started by the first task that waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import trio

from .._errors import StorageUnavailableError


class DatabaseProbe:
    """``query``: one cheap statement (``SELECT 1``) that raises `StorageUnavailableError`
    while the database does not answer; ``delays``: the waits between attempts."""

    def __init__(self, query: Callable[[], Awaitable[object]],
                 delays: Callable[[], Iterator[float]]) -> None:
        self._query = query
        self._delays = delays
        self._answered: trio.Event | None = None

    @property
    def probing(self) -> bool:
        """True while some task waits for the database (an outage is under way)."""
        return self._answered is not None

    async def wait(self, nursery: trio.Nursery) -> None:
        """Return once the database answers a query again."""
        answered = self._answered
        if answered is None:
            answered = self._answered = trio.Event()
            nursery.start_soon(self._probe, answered)
        await answered.wait()

    async def _probe(self, answered: trio.Event) -> None:
        try:
            for delay in self._delays():
                try:
                    await self._query()
                    return
                except StorageUnavailableError:
                    await trio.sleep(delay)
        finally:
            self._answered = None
            answered.set()
