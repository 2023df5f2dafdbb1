"""The public surface is exactly what we mean to offer, and importing starts nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import romancy_trio

EXPECTED = {
    "Activity",
    "ActivityContext",
    "ActivityFailedError",
    "ActivityTimeoutError",
    "App",
    "AppConfig",
    "Backlog",
    "BlockingSession",
    "ChannelError",
    "ChildHandle",
    "ChildWorkflowFailedError",
    "ConfigurationError",
    "DuplicateQueueEntryError",
    "Event",
    "EventReceipt",
    "EventTimeoutError",
    "HookStatistics",
    "Hooks",
    "InstanceFinishedError",
    "InstanceIdConflictError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "InvalidInputError",
    "NativeSession",
    "NonDeterminismError",
    "PlaceholderError",
    "QueueNotFoundError",
    "QueueStats",
    "ReceiveTimeoutError",
    "ReceivedEvent",
    "ReceivedMessage",
    "RetriesExhaustedError",
    "RetryPolicy",
    "RomancyError",
    "RunInfo",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "Session",
    "StorageUnavailableError",
    "TimeoutWaitingError",
    "UnknownWorkflowError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowAPIError",
    "WorkflowCancelledError",
    "WorkflowContext",
    "WorkflowFailedError",
    "WorkflowStatus",
    "activity",
    "open_app",
    "publish",
    "receive",
    "recur",
    "send_to",
    "sleep",
    "sleep_until",
    "subscribe",
    "unsubscribe",
    "wait_event",
    "workflow",
}


def test_public_names_are_pinned() -> None:
    public = {  # subpackages appear as attributes once something imports them
        n
        for n in dir(romancy_trio)
        if not n.startswith("_") and not isinstance(getattr(romancy_trio, n), types.ModuleType)
    }
    assert set(romancy_trio.__all__) == EXPECTED
    assert public == EXPECTED


HOOK_NAMES = {
    "ActivityCompleted", "ActivityEvent", "ActivityFailed", "ActivityRetried",
    "ActivityStarted", "CompensationRun", "EventInfo", "EventReceived", "HookEvent",
    "HookStatistics", "Hooks", "LeaseLost", "MessagePublished", "MessageReceived", "RunEvent",
    "SendInfo", "StartInfo", "TimerFired", "WorkflowCancelled", "WorkflowCompleted",
    "WorkflowFailed", "WorkflowResumed", "WorkflowStarted", "WorkflowSuspended",
}


def test_hook_and_log_modules_are_pinned() -> None:
    import romancy_trio.hooks
    import romancy_trio.logs

    assert set(romancy_trio.hooks.__all__) == HOOK_NAMES
    assert set(romancy_trio.logs.__all__) == {"ContextFilter", "JsonFormatter"}
    # every notification has its method on Hooks, and nothing else does
    methods = {n for n in dir(romancy_trio.hooks.Hooks) if n.startswith("on_")}
    assert methods == set(romancy_trio.hooks.METHODS.values())


APP_METHODS = {
    "asgi", "backlog", "cancel", "history", "hook_statistics", "list_instances", "publish",
    "publish_many", "replay", "result", "resume", "run", "runs", "send_event", "send_events",
    "send_to", "start", "statistics", "status", "subscribers", "workflows",
    # child workflows, schedules and queues (issue 26)
    "children", "parent", "schedule", "pause_schedule", "resume_schedule", "delete_schedule",
    "get_schedule", "list_schedules", "declare_queue", "enqueue", "queue_statistics",
}
"""What integrations (guests: mcp, llm, otel) may build on; ``workflows`` (mcp), ``history``
(llm), ``backlog`` and ``hook_statistics`` (otel), ``replay`` and ``resume`` (cli),
``subscribers`` (viewer) were added for them."""


def test_app_methods_are_pinned() -> None:
    """What integrations (guests such as romancy_trio.mcp) may build on."""
    assert {n for n in dir(romancy_trio.App) if not n.startswith("_")} == APP_METHODS


def test_importing_starts_no_thread_and_opens_nothing() -> None:
    code = (
        "import threading, romancy_trio, notify, channels; "
        "assert threading.active_count() == 1, threading.enumerate(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"



def test_counters_and_retry_forever_are_pinned() -> None:
    """General facilities guests build on: an activity counts numbers that `App.status` sums
    per instance (llm: tokens), and a policy retries an operator's mistake without limit."""
    import dataclasses

    assert callable(romancy_trio.ActivityContext.count)
    assert "counted" in {f.name for f in dataclasses.fields(romancy_trio.ActivityContext)}
    assert "counters" in {f.name for f in dataclasses.fields(romancy_trio.InstanceInfo)}
    policy = romancy_trio.RetryPolicy(retry_forever=("KeyMissing",), non_retryable=("Bad",))
    assert policy.retries_forever("app.errors.KeyMissing")
    assert not policy.retries_forever("ValueError")
    assert not romancy_trio.RetryPolicy(retry_forever=("Bad",), non_retryable=("Bad",)
                                        ).retries_forever("Bad")  # never-retried wins


def test_testing_guest_and_its_hooks_are_pinned() -> None:
    """romancy_trio.testing's names; the two general hooks added for it: ``AppConfig.clock``
    (the durable clock) and ``Workflow.replay`` (a recorded history against current code)."""
    import romancy_trio.testing

    assert set(romancy_trio.testing.__all__) == {
        "ClockError", "Environment", "environment", "export_history", "replay"}
    assert {n for n in dir(romancy_trio.Workflow) if not n.startswith("_")} == {"replay"}
    assert "clock" in {f.name for f in dataclasses.fields(romancy_trio.AppConfig)}
