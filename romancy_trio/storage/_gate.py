"""How many transactions a worker's activities hold open at once.

A transactional activity keeps a pooled connection from its first statement to its commit. If
activities could take every pooled connection, the library's own short statements (claims,
history records, final statuses) would queue behind them for as long as an activity runs, and an
instance whose activity committed would wait that long to record its end. So activities pass
this gate first: on PostgreSQL at most ``pool_size`` of them hold a transaction at once, and the
pool has `LIBRARY_CONNECTIONS` more for the library. The scheduler stops claiming while
activities wait here (`waiting`): work this worker cannot serve stays in the database for
another worker instead of waiting here under a lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

LIBRARY_CONNECTIONS = 2
"""Pooled connections beyond ``pool_size`` that only the library's own statements can use."""


class TransactionGate:
    """At most ``capacity`` holders at once (None: no bound), waiters served first come first."""

    def __init__(self, capacity: int | None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._slots = None if capacity is None else trio.Semaphore(capacity)
        self.waiting = 0
        """Activities waiting for a slot right now."""
        self._changed = trio.Event()

    @property
    def room(self) -> int | None:
        """Slots no activity holds or waits for (None: unbounded)."""
        if self._slots is None:
            return None
        return self._slots.value - self.waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        if self._slots.value == 0:  # will wait: counted before the checkpoint
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
            self._changed.set()
            self._changed = trio.Event()

    async def wait_room(self) -> None:
        """Return once a slot is free that no waiting activity will take."""
        while (room := self.room) is not None and room <= 0:
            await self._changed.wait()
