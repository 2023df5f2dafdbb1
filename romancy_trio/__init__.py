"""romancy_trio: durable workflows for Trio programs, on PostgreSQL or SQLite.

Importing this package starts nothing; :func:`open_app` does, inside your nursery.
"""

from ._activity_context import ActivityContext as ActivityContext
from ._activity_context import BlockingSession as BlockingSession
from ._app import App as App
from ._channels import publish as publish
from ._channels import receive as receive
from ._channels import send_to as send_to
from ._channels import subscribe as subscribe
from ._channels import unsubscribe as unsubscribe
from ._config import AppConfig as AppConfig
from ._definitions import Activity as Activity
from ._definitions import Workflow as Workflow
from ._definitions import activity as activity
from ._definitions import workflow as workflow
from ._errors import ActivityFailedError as ActivityFailedError
from ._errors import ActivityTimeoutError as ActivityTimeoutError
from ._errors import ChannelError as ChannelError
from ._errors import ChildWorkflowFailedError as ChildWorkflowFailedError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import EventTimeoutError as EventTimeoutError
from ._errors import InstanceFinishedError as InstanceFinishedError
from ._errors import InstanceIdConflictError as InstanceIdConflictError
from ._errors import InstanceNotFoundError as InstanceNotFoundError
from ._errors import InvalidInputError as InvalidInputError
from ._errors import NonDeterminismError as NonDeterminismError
from ._errors import ReceiveTimeoutError as ReceiveTimeoutError
from ._errors import RetriesExhaustedError as RetriesExhaustedError
from ._errors import RomancyError as RomancyError
from ._errors import StorageUnavailableError as StorageUnavailableError
from ._errors import TimeoutWaitingError as TimeoutWaitingError
from ._errors import UnknownWorkflowError as UnknownWorkflowError
from ._errors import WaitTimeoutError as WaitTimeoutError
from ._errors import WorkflowAPIError as WorkflowAPIError
from ._errors import WorkflowCancelledError as WorkflowCancelledError
from ._errors import WorkflowFailedError as WorkflowFailedError
from ._event_types import Event as Event
from ._event_types import EventReceipt as EventReceipt
from ._open_app import open_app as open_app
from ._queues import DuplicateQueueEntryError as DuplicateQueueEntryError
from ._queues import QueueNotFoundError as QueueNotFoundError
from ._queues import QueueStats as QueueStats
from ._replay import ReceivedEvent as ReceivedEvent
from ._replay import ReceivedMessage as ReceivedMessage
from ._replay import RetryPolicy as RetryPolicy
from ._replay import WorkflowContext as WorkflowContext
from ._replay._children import ChildHandle as ChildHandle
from ._schedules import ScheduleInfo as ScheduleInfo
from ._schedules import ScheduleNotFoundError as ScheduleNotFoundError
from ._waits import recur as recur
from ._waits import sleep as sleep
from ._waits import sleep_until as sleep_until
from ._waits import wait_event as wait_event
from .hooks import Hooks as Hooks
from .hooks import HookStatistics as HookStatistics
from .storage import Backlog as Backlog
from .storage import InstanceInfo as InstanceInfo
from .storage import NativeSession as NativeSession
from .storage import PlaceholderError as PlaceholderError
from .storage import RunInfo as RunInfo
from .storage import Session as Session
from .storage import WorkflowStatus as WorkflowStatus

__all__ = [
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
]
