"""The public surface is exactly what we mean to offer, and importing starts nothing."""

from __future__ import annotations

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
    "BlockingSession",
    "ChannelError",
    "ConfigurationError",
    "Event",
    "EventReceipt",
    "EventTimeoutError",
    "InstanceFinishedError",
    "InstanceIdConflictError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "InvalidInputError",
    "NativeSession",
    "NonDeterminismError",
    "PlaceholderError",
    "ReceiveTimeoutError",
    "ReceivedEvent",
    "ReceivedMessage",
    "RetriesExhaustedError",
    "RetryPolicy",
    "RomancyError",
    "RunInfo",
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


def test_importing_starts_no_thread_and_opens_nothing() -> None:
    code = (
        "import threading, romancy_trio, notify, channels; "
        "assert threading.active_count() == 1, threading.enumerate(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


APP_METHODS = {
    "asgi", "cancel", "history", "list_instances", "publish", "publish_many", "result", "run",
    "runs", "send_event", "send_to", "start", "statistics", "status",
}
"""``history`` was added for guests built on the app (romancy_trio.llm sums token usage)."""


def test_app_methods_are_pinned() -> None:
    assert {n for n in dir(romancy_trio.App) if not n.startswith("_")} == APP_METHODS
