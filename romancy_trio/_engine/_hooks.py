"""The hook dispatcher: the one object the engine hands what happened to.

``emit`` never blocks and never raises: it puts the notification on each hook's bounded queue
(a full queue drops it, counted). ``serve`` runs one task per hook, owned by the app's nursery,
that awaits the hook's method for each notification in order, within ``hook_timeout``. What a
hook that raises or overruns does is the contract written in :mod:`romancy_trio.hooks`.

A waiting hook task is woken by the notification that ends a run (completed, failed,
cancelled, suspended, lease lost), by a queue half full, by closing, or else by the watchdog's
next tick (every `HANDOVER_WITHIN` s at most): a run's notifications are handed over in one
wake-up at its end (a wake-up, a Trio task step, costs more than most notifications), and none
waits longer than a tick.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from ..hooks import (
    METHODS,
    HookEvent,
    Hooks,
    HookStatistics,
    LeaseLost,
    SendInfo,
    StartInfo,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowSuspended,
    frozen_map,
)

log = logging.getLogger("romancy_trio.hooks")


_BATCH = 64
"""Notifications a hook's task hands over in a row before it lets other tasks run."""

_PROMPT: frozenset[type[HookEvent]] = frozenset({
    WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowSuspended, LeaseLost})
"""The notifications that end a run: one of them wakes a waiting hook task at once."""

HANDOVER_WITHIN = 0.25
"""Longest wait (s) of a queued notification that does not end a run for its hook's task
(the watchdog's tick: the shorter of this and a quarter of ``hook_timeout``)."""


def _overrides(hook: Hooks, name: str) -> bool:
    """Whether ``hook`` has its own ``name`` (the base's is a no-op, not worth calling)."""
    return getattr(getattr(hook, name), "__func__", None) is not getattr(Hooks, name)


def _wanted(hook: Hooks) -> frozenset[type[HookEvent]]:
    """The notifications ``hook`` overrides a method for (the others are not queued)."""
    return frozenset(kind for kind, name in METHODS.items() if _overrides(hook, name))


@dataclass(slots=True)
class _Slot:
    hook: Hooks
    name: str
    limit: int
    """Notifications queued at most (``hook_queue``)."""
    wants: frozenset[type[HookEvent]]
    queue: deque[HookEvent] = field(default_factory=deque)
    closed: bool = False
    """No more notifications are taken (the queued ones are still told)."""
    waiter: trio.lowlevel.Task | None = None
    """The hook's task while it waits for a notification (woken by the next one)."""
    delivered: int = 0
    failed: int = 0
    timed_out: int = 0
    dropped: int = 0
    warned: bool = False
    scope: trio.CancelScope | None = None
    """Around this hook's calls; the watchdog cancels it when a call overruns."""
    calls: int = 0
    """Calls begun (the watchdog tells one call from the next by it)."""
    busy: bool = False
    """A call is in progress."""
    seen: int = -1
    """The call the watchdog saw in progress at its last tick (-1: none)."""
    ticks: int = 0
    """The watchdog's ticks in a row that saw call ``seen`` in progress."""
    method: str = ""

    def statistics(self) -> HookStatistics:
        return HookStatistics(self.name, self.delivered, self.failed, self.timed_out,
                              self.dropped)

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    async def wait(self) -> None:
        """Until a notification is queued or the slot closes (a checkpoint)."""
        self.waiter = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class HookDispatcher:
    """Fan-out of notifications to the app's hooks (none: every call is a cheap no-op)."""

    def __init__(self, hooks: Sequence[Hooks] = (), *, queue: int = 1000,
                 timeout: float = 5.0) -> None:
        for hook in hooks:
            if not isinstance(hook, Hooks):
                raise TypeError(f"hooks must be romancy_trio.hooks.Hooks instances, not "
                                f"{type(hook).__qualname__}")
        if not (isinstance(queue, int) and queue >= 1) or not 0 < timeout < math.inf:
            raise ValueError("hook_queue must be an int >= 1 and hook_timeout > 0 seconds")
        self._timeout = timeout
        self._tick = min(timeout / 4, HANDOVER_WITHIN)
        self._ticks = math.ceil(timeout / self._tick - 1e-9)
        """A call seen in progress at more than this many ticks in a row has run at least
        the timeout (and at most one tick more)."""
        self._slots: list[_Slot] = []
        for i, hook in enumerate(hooks):
            self._slots.append(_Slot(hook, f"{i}:{type(hook).__qualname__}", queue,
                                     _wanted(hook)))
        self._done = trio.Event()
        """Set when every hook's task has ended (its queue drained)."""
        self.wanted: frozenset[type[HookEvent]] = frozenset().union(
            *(slot.wants for slot in self._slots))
        """The notifications some hook overrides a method for: only these are worth building
        (`emit` drops the others anyway)."""
        self._attributes = [s for s in self._slots if _overrides(s.hook, "instance_attributes")]
        self._extensions = [s for s in self._slots if _overrides(s.hook, "event_extensions")]
        self.supplies_attributes = bool(self._attributes)
        """Whether some hook overrides `Hooks.instance_attributes` (else it is not asked)."""
        self.supplies_extensions = bool(self._extensions)
        """Whether some hook overrides `Hooks.event_extensions` (else it is not asked)."""

    def emit(self, event: HookEvent) -> None:
        for slot in self._slots:
            if type(event) not in slot.wants:
                continue
            if slot.closed:
                slot.dropped += 1  # the app is closing
            elif len(slot.queue) >= slot.limit:
                slot.dropped += 1
                self._warn(slot, "its queue is full; notifications are dropped (counted)")
            else:
                queue = slot.queue
                queue.append(event)
                if slot.waiter is not None and (type(event) in _PROMPT
                                                or 2 * len(queue) >= slot.limit):
                    slot.wake()

    def instance_attributes(self, start: StartInfo) -> Mapping[str, str]:
        """The caller's attributes, completed by every hook's (the caller's keys win)."""
        found: dict[str, str] = {}
        for slot in self._attributes:
            found.update(self._supply(slot, slot.hook.instance_attributes, start))
        return frozen_map({**found, **start.attributes})

    def event_extensions(self, send: SendInfo) -> Mapping[str, str]:
        found: dict[str, str] = {}
        for slot in self._extensions:
            found.update(self._supply(slot, slot.hook.event_extensions, send))
        return frozen_map(found)

    def statistics(self) -> list[HookStatistics]:
        return [slot.statistics() for slot in self._slots]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """One task per hook until `drain` (or cancellation), and the watchdog."""
        try:
            async with trio.open_nursery() as outer:
                if self._slots:
                    outer.start_soon(self._watchdog)
                async with trio.open_nursery() as nursery:
                    for slot in self._slots:
                        nursery.start_soon(self._run, slot)
                    task_status.started()
                outer.cancel_scope.cancel()  # every hook's queue is drained
        finally:
            self._close()
            self._done.set()

    async def drain(self, timeout: float) -> None:
        """Accept no more notifications; wait (at most ``timeout`` seconds) until the hooks
        have been told what is queued."""
        self._close()
        with trio.move_on_after(timeout):
            await self._done.wait()

    def _close(self) -> None:
        for slot in self._slots:
            slot.closed = True
            slot.wake()

    async def _run(self, slot: _Slot) -> None:
        """Hand this hook its notifications in order until it is closed and drained. One cancel
        scope covers many calls (a scope per call costs more than most hooks): the watchdog
        cancels it when a call overruns, and a new one covers the calls after it."""
        while True:
            slot.scope = trio.CancelScope()
            with slot.scope:
                await self._calls(slot)
                return  # closed and drained
            slot.busy = False
            slot.timed_out += 1
            self._warn(slot, f"{slot.method} ran past hook_timeout ({self._timeout}s) and "
                             "was cancelled")

    async def _calls(self, slot: _Slot) -> None:
        queue, in_a_row = slot.queue, 0
        methods = {kind: (name, getattr(slot.hook, name)) for kind, name in METHODS.items()
                   if kind in slot.wants}
        while True:
            if queue:  # what is queued already is handed over without a trip through the
                event = queue.popleft()  # scheduler, up to _BATCH in a row
                in_a_row += 1
                if in_a_row >= _BATCH:
                    in_a_row = 0
                    await trio.lowlevel.checkpoint()
            elif slot.closed:
                return
            else:
                in_a_row = 0
                await slot.wait()
                continue
            slot.method, method = methods[type(event)]
            slot.calls += 1
            slot.busy = True
            try:
                await method(event)
            except Exception as exc:  # noqa: BLE001 - the hook contract: counted, logged once
                slot.failed += 1
                self._warn(slot, f"{slot.method} raised", exc)
            else:
                slot.delivered += 1
            slot.busy = False

    async def _watchdog(self) -> None:
        """Cancel a hook's call once it has run ``hook_timeout`` (checked every tick, so
        within one tick more); wake a hook task that waits while notifications are queued
        (none of them ended a run)."""
        while True:
            await trio.sleep(self._tick)
            for slot in self._slots:
                if slot.queue and slot.waiter is not None:
                    slot.wake()
                if not slot.busy:
                    slot.seen, slot.ticks = -1, 0
                    continue
                if slot.seen != slot.calls:
                    slot.seen, slot.ticks = slot.calls, 0
                slot.ticks += 1
                if slot.ticks > self._ticks and slot.scope is not None:
                    slot.scope.cancel()

    def _supply(self, slot: _Slot, fn: Callable[[Any], Mapping[str, str]], arg: Any
                ) -> Mapping[str, str]:
        try:
            values = fn(arg)
            return {str(k): str(v) for k, v in values.items()}
        except Exception as exc:  # noqa: BLE001 - the hook contract: counted, logged once
            slot.failed += 1
            self._warn(slot, f"{fn.__name__} raised", exc)
            return {}

    def _warn(self, slot: _Slot, what: str, exc: BaseException | None = None) -> None:
        if not slot.warned:
            slot.warned = True
            log.error("hook %s: %s; durable progress goes on without it (further problems "
                      "of this hook are only counted: App.hook_statistics())", slot.name, what,
                      exc_info=exc)


NO_HOOKS = HookDispatcher()
"""The dispatcher of an engine part used without an app (tests, tools)."""
