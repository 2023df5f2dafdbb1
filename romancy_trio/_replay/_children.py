"""Child workflows as the replay core sees them: a recorded start and a recorded result wait.

Starting a child is a built-in transactional activity (``romancy.child.start:N``): the child's
row is inserted in the same transaction that records the start, so replay returns the recorded
start and never inserts it twice. Its outcome comes back as an event targeted at the parent
(type ``romancy.child:<child id>``), which the parent waits for like any event: the wait holds
no worker, and the event waits in the parent's inbox if the child ends first. Pure code: the
workflow's definition is used only through ``name``, ``input`` and ``result_hint``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from .._codec import convert
from .._errors import ChildWorkflowFailedError
from ._events import RetryPolicy, WaitKind
from ._received import ReceivedEvent
from ._requests import ActivityCall, WaitRequest

T = TypeVar("T")
CHILD_START = "romancy.child.start"
CHILD_EVENT = "romancy.child:"
"""The type of the event that tells a parent its child ended, followed by the child's id."""
CHILD_SOURCE = "romancy.child"
ParentClosePolicy = Literal["cancel", "abandon"]
_MAX_ID = 200


class _Input(Protocol):
    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...
    def encode(self, value: Any) -> str: ...


class ChildWorkflowDef(Protocol):
    """What the core needs of a workflow definition (a ``@workflow``)."""

    name: str
    input: _Input
    result_hint: Any


def child_id(parent: str, run_no: int, n: int) -> str:
    """The default id of a parent's n-th child in run ``run_no``: stable under replay."""
    wanted = f"{parent}/child-{n}" if run_no == 1 else f"{parent}/run-{run_no}/child-{n}"
    if len(wanted) <= _MAX_ID:
        return wanted
    return f"child-{hashlib.sha256(wanted.encode()).hexdigest()}"


def start_call(workflow: ChildWorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any],
               instance_id: str, policy: str) -> ActivityCall[str]:
    """The recorded activity that inserts the child (its input checked here, at the call)."""
    if policy not in ("cancel", "abandon"):
        raise ValueError(f"parent_close_policy must be 'cancel' or 'abandon', not {policy!r}")
    if not instance_id or len(instance_id) > _MAX_ID or "\x00" in instance_id:
        raise ValueError(f"a child instance_id must be 1-{_MAX_ID} characters with no NUL")
    input_json = workflow.input.encode(workflow.input.bind(args, kwargs))
    return ActivityCall[str](CHILD_START, (workflow.name, input_json, instance_id, policy),
                             result_hint=str, retry=RetryPolicy(
                                 max_attempts=5, initial_interval=0.2,
                                 non_retryable=("InstanceIdConflictError",)))


@dataclass(frozen=True, slots=True)
class ChildHandle(Generic[T]):
    """A started child workflow. ``await child.result()`` waits (holding no worker) for it
    to end: its result, or :class:`ChildWorkflowFailedError` with the child's error."""

    instance_id: str
    workflow_name: str
    result_hint: Any

    async def result(self) -> T:
        event: ReceivedEvent[Any] = await WaitRequest[ReceivedEvent[Any]](
            WaitKind.EVENT, CHILD_EVENT + self.instance_id, None)
        return self._outcome(event.data)

    def _outcome(self, data: Any) -> T:
        status = data.get("status")
        if status == "completed":
            value: T = convert(data.get("result"), self.result_hint, "child result")
            return value
        error = data.get("error") or {}
        cancelled = status == "cancelled"
        raise ChildWorkflowFailedError(
            self.instance_id, self.workflow_name,
            "cancelled" if cancelled else str(error.get("type", "unknown")),
            "" if cancelled else str(error.get("message", "")), cancelled=cancelled)


@dataclass(eq=False, slots=True)
class StartChild(Generic[T]):
    """``await ctx.start_child(...)``: records the start, returns a :class:`ChildHandle`."""

    call: ActivityCall[str]
    handle: ChildHandle[T]

    def __await__(self) -> Generator[Any, Any, ChildHandle[T]]:
        yield from self.call.__await__()
        return self.handle
