"""Drive one claimed instance: replay its history through the core, carry out its commands."""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from .._codec import convert, dumps, loads
from .._definitions import Registry
from .._errors import InvalidInputError, RomancyError, UnknownWorkflowError
from .._replay import (
    CompleteWorkflow,
    ContinueAsNew,
    ErrorInfo,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
    WorkflowContext,
    WorkflowMachine,
)
from ..storage import Claimed, Lease, Store, WorkflowStatus
from ._activities import run_activity

log = logging.getLogger("romancy_trio.runner")


def _error(exc: RomancyError) -> ErrorInfo:
    return ErrorInfo.from_exception(exc)


async def run_claimed(store: Store, registry: Registry, claimed: Claimed) -> None:
    """Run the instance until it completes, fails or continues as new (then keep going).

    Raises LeaseLostError if another worker took the instance over; the caller abandons it.
    """
    lease = claimed.lease
    try:
        wf = registry.workflow(claimed.workflow_name)
    except UnknownWorkflowError as exc:
        await store.finish(lease, WorkflowStatus.FAILED, error=_error(exc), now=time.time())
        return
    run_no, input_json, started_at = claimed.run_no, claimed.input_json, claimed.run_started_at
    fresh = claimed.fresh
    while True:
        try:
            workflow_input = convert(loads(input_json), wf.input_hint, "input")
        except InvalidInputError as exc:
            await store.finish(lease, WorkflowStatus.FAILED, error=_error(exc), now=time.time())
            return
        history = [] if fresh else await store.load_history(lease.instance_id, run_no)
        machine = WorkflowMachine(history=history, started_at=started_at)
        ctx = WorkflowContext(
            machine, instance_id=lease.instance_id, workflow_name=wf.name, run_no=run_no
        )
        machine.start(wf.fn(ctx, workflow_input) if wf.takes_input else wf.fn(ctx))
        try:
            outcome = await _drive(store, registry, machine, lease, run_no, len(history), wf.name)
        finally:
            machine.close()
        if isinstance(outcome, CompleteWorkflow):
            try:
                result = convert(loads(dumps(outcome.result)), wf.result_hint, "result")
            except InvalidInputError as exc:
                await store.finish(lease, WorkflowStatus.FAILED, error=_error(exc), now=time.time())
                return
            await store.finish(lease, WorkflowStatus.COMPLETED, result=result, now=time.time())
            return
        if isinstance(outcome, FailWorkflow):
            await store.finish(lease, WorkflowStatus.FAILED, error=outcome.error, now=time.time())
            return
        try:
            input_json = dumps(outcome.input)
            convert(loads(input_json), wf.input_hint, "recur input")
        except InvalidInputError as exc:
            await store.finish(lease, WorkflowStatus.FAILED, error=_error(exc), now=time.time())
            return
        started_at = time.time()
        run_no = await store.continue_as_new(lease, run_no, input_json, now=started_at)
        fresh = True  # the new run's history was just created empty


async def _drive(
    store: Store,
    registry: Registry,
    machine: WorkflowMachine,
    lease: Lease,
    run_no: int,
    next_seq: int,
    workflow_name: str,
) -> CompleteWorkflow | FailWorkflow | ContinueAsNew:
    seq = next_seq
    while True:
        command = machine.advance()
        if not isinstance(command, RunActivities):
            return command
        calls = command.commands
        seqs = range(seq, seq + len(calls))
        seq += len(calls)

        async def one(cmd: Any, n: int) -> None:
            event: HistoryEvent = await run_activity(
                store,
                registry.activities.get(cmd.name),
                cmd,
                lease=lease,
                run_no=run_no,
                seq=n,
                workflow_name=workflow_name,
            )
            machine.resolve(event)

        if len(calls) == 1:
            await one(calls[0], seqs[0])
        else:
            async with trio.open_nursery() as nursery:
                for cmd, n in zip(calls, seqs, strict=True):
                    nursery.start_soon(one, cmd, n)
