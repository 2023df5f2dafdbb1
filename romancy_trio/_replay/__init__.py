"""Sans-IO replay core. Imports no event loop, driver or database."""

from ._context import WorkflowContext as WorkflowContext
from ._events import ActivityCommand as ActivityCommand
from ._events import Command as Command
from ._events import CompleteWorkflow as CompleteWorkflow
from ._events import ContinueAsNew as ContinueAsNew
from ._events import ErrorInfo as ErrorInfo
from ._events import EventKind as EventKind
from ._events import FailWorkflow as FailWorkflow
from ._events import HistoryEvent as HistoryEvent
from ._events import RunActivities as RunActivities
from ._machine import WorkflowMachine as WorkflowMachine
from ._requests import ActivityCall as ActivityCall
from ._requests import GatherRequest as GatherRequest
from ._requests import RecurRequest as RecurRequest
