"""Workflow operations that wait without holding a worker: events, timers, ``recur``.

While a workflow waits it holds no task, no lease and no memory in any worker: the wait is a row
in the database, and the instance resumes by replay on whichever worker claims it once the event
arrives or the timer is due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, overload

from ._replay import ReceivedEvent, RecurRequest, WaitKind, WaitRequest, WorkflowContext

T = TypeVar("T")


@overload
def wait_event(ctx: WorkflowContext, event_type: str, *, timeout: float | None = None
               ) -> WaitRequest[ReceivedEvent[Any]]: ...
@overload
def wait_event(ctx: WorkflowContext, event_type: str, *, timeout: float | None = None,
               data_type: type[T]) -> WaitRequest[ReceivedEvent[T]]: ...
def wait_event(ctx: WorkflowContext, event_type: str, *, timeout: float | None = None,
               data_type: Any = Any) -> Any:
    """Wait for an event of ``event_type``; returns a :class:`ReceivedEvent`.

    ``timeout`` (seconds): raise :class:`EventTimeoutError` in the workflow if none arrived.
    ``data_type``: rebuild the event's data as this type (dataclass, pydantic model, ...).
    """
    if not event_type:
        raise ValueError("event_type must be a non-empty string")
    return ctx._wait(WaitKind.EVENT, event_type, timeout, data_type)


def sleep(ctx: WorkflowContext, seconds: float) -> WaitRequest[None]:
    """Durable sleep: the worker is released and any worker resumes the workflow when due."""
    if seconds < 0:
        raise ValueError("sleep() needs seconds >= 0")
    return ctx._wait(WaitKind.TIMER, "", seconds, Any)


def sleep_until(ctx: WorkflowContext, when: datetime) -> WaitRequest[None]:
    """Durable sleep until a timezone-aware moment."""
    return ctx._wait_until(when)


def recur(ctx: WorkflowContext, new_input: Any = None) -> RecurRequest:
    """Erlang-style tail call: ``await recur(ctx, next_state)`` ends this run and starts the next
    with a fresh history (the old one is archived; lineage is kept). For a workflow with several
    parameters ``new_input`` is a dict by parameter name."""
    return ctx.recur(new_input)
