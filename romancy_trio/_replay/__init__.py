"""Sans-IO replay core. Imports no event loop, driver or database."""

from ._context import WorkflowContext as WorkflowContext
from ._events import ATTEMPT as ATTEMPT
from ._events import COMPENSATE as COMPENSATE
from ._events import ActivityCommand as ActivityCommand
from ._events import CancelWorkflow as CancelWorkflow
from ._events import Command as Command
from ._events import CompleteWorkflow as CompleteWorkflow
from ._events import ContinueAsNew as ContinueAsNew
from ._events import ErrorInfo as ErrorInfo
from ._events import EventKind as EventKind
from ._events import FailWorkflow as FailWorkflow
from ._events import HistoryEvent as HistoryEvent
from ._events import Outcome as Outcome
from ._events import RetryPolicy as RetryPolicy
from ._events import RunActivities as RunActivities
from ._events import Suspend as Suspend
from ._events import WaitCommand as WaitCommand
from ._events import WaitKind as WaitKind
from ._events import type_name as type_name
from ._machine import WorkflowMachine as WorkflowMachine
from ._received import ReceivedEvent as ReceivedEvent
from ._received import ReceivedMessage as ReceivedMessage
from ._requests import ActivityCall as ActivityCall
from ._requests import GatherRequest as GatherRequest
from ._requests import RecurRequest as RecurRequest
from ._requests import WaitRequest as WaitRequest
