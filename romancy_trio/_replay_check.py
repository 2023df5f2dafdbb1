"""Replay a recorded history against the current code of a workflow, with no side effects
(what `Workflow.replay` does): the sans-IO machine is driven until the history runs out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import NonDeterminismError, WorkflowAPIError
from ._replay import (
    EventKind,
    FailWorkflow,
    HistoryEvent,
    WorkflowContext,
    WorkflowMachine,
    type_name,
)

if TYPE_CHECKING:
    from ._definitions import Workflow


def event_of(record: Mapping[str, Any]) -> HistoryEvent:
    """One recorded step from its JSON form (what `event_json` gives)."""
    try:
        return HistoryEvent(int(record["seq"]), EventKind(record["kind"]), str(record["key"]),
                            record.get("payload"), float(record["at"]),
                            record.get("compensation"))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"not a recorded history step: {dict(record)!r} ({exc})") from None


def event_json(event: HistoryEvent) -> dict[str, Any]:
    """One recorded step as JSON (``seq``, ``kind``, ``key``, ``payload``, ``at``, and
    ``compensation`` when set)."""
    out = {"seq": event.seq, "kind": str(event.kind), "key": event.key,
           "payload": event.payload, "at": event.at}
    if event.compensation is not None:
        out["compensation"] = event.compensation
    return out


def replay(workflow: Workflow[Any, Any], history: Sequence[Mapping[str, Any]], *,
           input: Any, started_at: float, determinism_guard: bool = True) -> None:
    """Run ``workflow``'s code over ``history`` as a worker would on resuming it; raise the
    `NonDeterminismError` that worker would meet (or the `WorkflowAPIError` of a workflow
    that calls ``time.time()`` and the like). Activities are not run: their results are the
    recorded ones. Ends quietly once the history is used up."""
    events = [event_of(r) for r in history]
    args, kwargs = workflow.input.restore(input)
    machine = WorkflowMachine(history=events, started_at=started_at,
                              determinism_guard=determinism_guard and
                              workflow.determinism_guard)
    ctx = WorkflowContext(machine, instance_id="replay", workflow_name=workflow.name, run_no=1)
    machine.start(workflow.fn(ctx, *args, **kwargs))
    try:
        command = machine.advance()
        if isinstance(command, FailWorkflow):
            for kind in (NonDeterminismError, WorkflowAPIError):
                if command.error.type == type_name(kind):
                    raise kind(command.error.message)
    finally:
        machine.close()
