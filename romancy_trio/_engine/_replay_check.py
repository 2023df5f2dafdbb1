"""Replay a recorded history against the current workflow code, with no side effects:
no activity runs, nothing is written. What ``App.replay`` (and ``romancy-trio replay``) use to
catch a non-deterministic change before it is deployed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._codec import loads
from .._definitions import Workflow
from .._errors import InvalidInputError, NonDeterminismError
from .._replay import EventKind, FailWorkflow, HistoryEvent, WorkflowContext, WorkflowMachine


def history_event(row: Mapping[str, Any]) -> HistoryEvent:
    """One exported history row (``seq``, ``kind``, ``key``, ``payload``, ``at``)."""
    try:
        return HistoryEvent(int(row["seq"]), EventKind(row["kind"]), str(row["key"]),
                            row.get("payload"), float(row["at"]), row.get("compensation"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"not a history row ({exc}): {dict(row)!r}") from None


def check_replay(wf: Workflow[Any, Any], input_json: str, history: Sequence[HistoryEvent], *,
                 started_at: float, instance_id: str = "replay") -> int:
    """Step ``wf`` through ``history``; return how many recorded steps it consumed.
    Raises :class:`NonDeterminismError` naming the first step the code no longer takes."""
    args, kwargs = wf.input.restore(loads(input_json))
    machine = WorkflowMachine(history=history, started_at=started_at)
    ctx = WorkflowContext(machine, instance_id=instance_id, workflow_name=wf.name, run_no=1)
    machine.start(wf.fn(ctx, *args, **kwargs))
    try:
        command = machine.advance()
        if isinstance(command, FailWorkflow) and command.error.type.endswith(
                "NonDeterminismError"):
            raise NonDeterminismError(command.error.message)
        if machine.is_replaying:
            raise NonDeterminismError(
                f"the code stopped ({type(command).__name__}) before the end of the "
                f"recorded history ({len(history)} steps): the history does not fit")
        return len(history)
    finally:
        machine.close()

