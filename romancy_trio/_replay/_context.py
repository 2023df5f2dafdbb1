"""The handle a workflow function receives. Everything on it is deterministic under replay."""

from __future__ import annotations

import random as _random
import uuid as _uuid
from datetime import UTC, datetime
from typing import Any

from ._children import ChildHandle, ChildWorkflowDef, StartChild, child_id, start_call
from ._events import WaitKind
from ._machine import WorkflowMachine
from ._requests import ActivityCall, GatherRequest, RecurRequest, WaitRequest


class WorkflowContext:
    """Passed as the first argument of every ``@workflow`` function.

    ``now()``, ``random()`` and ``uuid4()`` give the same answers when the workflow is replayed:
    time is the time of the latest recorded step (or the run's start), randomness is seeded from
    the instance id and run number.
    """

    __slots__ = ("_children", "_machine", "_rng", "instance_id", "run_no", "workflow_name")

    def __init__(self, machine: WorkflowMachine, *, instance_id: str, workflow_name: str,
                 run_no: int) -> None:
        self._machine = machine
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.run_no = run_no
        # seeded at first use: seeding costs ~27 k instructions, and most runs never ask
        self._rng: _random.Random | None = None
        self._children = 0

    @property
    def is_replaying(self) -> bool:
        """True while re-executing recorded steps (e.g. to skip logging on replay)."""
        return self._machine.is_replaying

    def now(self) -> datetime:
        """Deterministic current time (UTC): when the latest recorded step happened."""
        return datetime.fromtimestamp(self._machine.clock, UTC)

    def random(self) -> _random.Random:
        """A random generator that yields the same sequence on every replay of this run."""
        if self._rng is None:
            self._rng = _random.Random(f"{self.instance_id}/{self.run_no}")
        return self._rng

    def uuid4(self) -> _uuid.UUID:
        """A random UUID that is the same on every replay of this run."""
        return _uuid.UUID(int=self.random().getrandbits(128), version=4)

    def patched(self, patch_id: str) -> bool:
        """Versioning: True when this run reaches this point for the first time (new code:
        the decision is recorded, so replays agree), False when it replays a history that
        was recorded before the patch (old code). Write the change as
        ``if ctx.patched("id"): <new> else: <old>``; once no instance from before the patch
        is left, keep only ``<new>`` and call ``ctx.deprecate_patch("id")`` there instead."""
        if not patch_id:
            raise ValueError("patched() needs a non-empty patch id")
        return self._machine.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """The clean-up step after `patched`: the old branch is deleted; instances that
        recorded the patch replay on (its marker is skipped). Remove the call once no
        instance that passed ``patched(patch_id)`` is left."""
        if not patch_id:
            raise ValueError("deprecate_patch() needs a non-empty patch id")
        self._machine.deprecate_patch(patch_id)

    def gather(self, *calls: ActivityCall[Any]) -> GatherRequest:
        """Run several activities concurrently; ``await`` returns their results in call order.

        If any fails, the first failure (in call order) is raised after all have finished.
        """
        for call in calls:
            if not isinstance(call, ActivityCall):
                raise TypeError(f"ctx.gather takes activity calls, not {type(call).__qualname__}")
        return GatherRequest(tuple(calls))

    def recur(self, new_input: Any = None) -> RecurRequest:
        """Continue as new: end this run, archive its history, start the next run with new_input."""
        return RecurRequest(new_input)

    def start_child(self, workflow: ChildWorkflowDef, /, *args: Any,
                    instance_id: str | None = None, parent_close_policy: str = "cancel",
                    **kwargs: Any) -> StartChild[Any]:
        """Start ``workflow`` as a child of this instance: ``child = await ctx.start_child(wf,
        arg)``, then ``await child.result()``. The start is recorded (replay never starts it
        twice). ``instance_id``: default ``<parent id>/child-<n>``. ``parent_close_policy``:
        ``"cancel"`` (default: the child is cancelled, its compensations run, when this
        instance ends before it) or ``"abandon"`` (it runs on)."""
        self._children += 1
        iid = instance_id if instance_id is not None else child_id(
            self.instance_id, self.run_no, self._children)
        call = start_call(workflow, args, kwargs, iid, parent_close_policy)
        return StartChild(call, ChildHandle(iid, workflow.name, workflow.result_hint))

    async def run_child(self, workflow: ChildWorkflowDef, /, *args: Any,
                        instance_id: str | None = None, parent_close_policy: str = "cancel",
                        **kwargs: Any) -> Any:
        """``start_child`` and wait for its result, in one call."""
        child = await self.start_child(workflow, *args, instance_id=instance_id,
                                       parent_close_policy=parent_close_policy, **kwargs)
        return await child.result()

    def _wait(self, kind: WaitKind, key: str, timeout: float | None, data_hint: Any
              ) -> WaitRequest[Any]:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0")
        deadline = None if timeout is None else self._machine.clock + timeout
        return WaitRequest(kind, key, deadline, data_hint)

    def _wait_until(self, when: datetime) -> WaitRequest[None]:
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        return WaitRequest(WaitKind.TIMER, "", when.timestamp())
