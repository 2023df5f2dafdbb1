"""The outcome of a run, handed to a caller in this process when its finish commits.

`App.run` on an instance it started expects its outcome here before it starts it; the
store's finish offers the outcome after its transaction committed, and wakes the caller
through the hub as before. The caller then needs no status SELECT (issue #22: two per
workflow). Only expected instances are kept, and only while expected: bounded by the calls
under way. An instance that ends elsewhere (another worker) is never offered: the caller
falls back to reading its status when the done notification arrives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio

from .._replay import ErrorInfo
from ._types import WorkflowStatus


@dataclass(frozen=True, slots=True)
class Finished:
    status: WorkflowStatus
    result: Any
    """As the database would return it (decoded JSON)."""
    error: ErrorInfo | None


class Slot:
    __slots__ = ("changed", "finished", "running")

    def __init__(self) -> None:
        self.finished: Finished | None = None
        self.running = 0
        """Runs of the instance under way in this process (`Handover.running`)."""
        self.changed = trio.Event()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait(self) -> Finished | None:
        """Once a run of it under way here ended: its outcome, or None if it did not end
        it (it suspended, was handed over, lost its lease) or none was under way."""
        while self.finished is None and self.running:
            await self.changed.wait()
        return self.finished


class Handover:
    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}

    @contextmanager
    def expect(self, instance_id: str) -> Iterator[Slot]:
        """A slot for ``instance_id``'s outcome while the block runs (one caller per id: a
        second expecting the same id at once gets a slot that stays empty)."""
        slot = Slot()
        mine = self._slots.setdefault(instance_id, slot) is slot
        try:
            yield slot
        finally:
            if mine:
                del self._slots[instance_id]

    @contextmanager
    def running(self, instance_id: str) -> Iterator[None]:
        """Around a run of the instance in this process: a caller woken by its done
        notification (which may overtake the finish's own reply) waits for the run's end."""
        slot = self._slots.get(instance_id)
        if slot is None:
            yield
            return
        slot.running += 1
        try:
            yield
        finally:
            slot.running -= 1
            slot._changed()

    def offer(self, instance_id: str, finished: Finished) -> None:
        """After the finish committed (from the Trio thread)."""
        if (slot := self._slots.get(instance_id)) is not None:
            slot.finished = finished
            slot._changed()

    def expected(self, instance_id: str) -> bool:
        return instance_id in self._slots
