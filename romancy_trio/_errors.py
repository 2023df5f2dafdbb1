"""Every error the library raises on purpose. Each names what went wrong and whose fault it is."""

from __future__ import annotations


class RomancyError(Exception):
    """Base class of every romancy_trio error."""


class ConfigurationError(RomancyError):
    """The application was configured wrongly (bad database URL, duplicate workflow name...)."""


class UnknownWorkflowError(RomancyError):
    """A workflow name that no registered workflow has."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        listed = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"unknown workflow {name!r}; registered workflows: {listed}")


class InvalidInputError(RomancyError):
    """Input (or a recorded value) does not serialize or does not match the declared type."""


class InstanceNotFoundError(RomancyError):
    """No workflow instance has this id."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"no workflow instance with id {instance_id!r}")


class InstanceIdConflictError(RomancyError):
    """A caller-chosen instance id is already used by an instance of another workflow."""


class NonDeterminismError(RomancyError):
    """Replaying a workflow's history, the code asked for something other than what was recorded."""


class WorkflowFailedError(RomancyError):
    """A workflow ended with an error. Carries the original error's type name and message."""

    def __init__(self, instance_id: str, error_type: str, message: str) -> None:
        self.instance_id = instance_id
        self.error_type = error_type
        self.message = message
        super().__init__(f"workflow {instance_id!r} failed: {error_type}: {message}")


class WorkflowCancelledError(RomancyError):
    """The workflow instance was cancelled before it finished."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"workflow {instance_id!r} was cancelled")


class InstanceFinishedError(RomancyError):
    """An operation that needs a live instance (e.g. cancel) was asked of a finished one."""


class ActivityFailedError(RomancyError):
    """Raised inside a workflow when an activity it called failed.

    The same error is raised on replay (it is recorded in history), so a workflow that catches it
    takes the same path every time. ``error_type``: qualified name of the activity's exception.
    """

    def __init__(self, activity_id: str, error_type: str, message: str) -> None:
        self.activity_id = activity_id
        self.error_type = error_type
        self.message = message
        super().__init__(f"activity {activity_id!r} failed: {error_type}: {message}")


class WorkflowAPIError(RomancyError):
    """A workflow used the runtime wrongly (e.g. awaited something that is not a workflow op)."""


class LeaseLostError(RomancyError):
    """This worker no longer owns the instance (lease expired and taken over, or cancelled).

    Internal: the worker abandons the instance; whoever owns it now carries on.
    """


class TimeoutWaitingError(RomancyError, TimeoutError):
    """Waiting for a workflow's result took longer than the caller allowed."""


class StorageUnavailableError(RomancyError):
    """The database could not be reached or dropped the connection; the operation may be retried.

    Work is never lost by it: an instance whose worker hits this is released or its lease expires,
    and it is claimed again.
    """


class RetriesExhaustedError(ActivityFailedError):
    """Raised inside a workflow when an activity failed on every attempt its policy allowed.

    ``attempts`` is how many were made; ``error_type``/``message`` describe the last cause.
    """

    def __init__(self, activity_id: str, error_type: str, message: str, attempts: int) -> None:
        super().__init__(activity_id, error_type, message)
        self.attempts = attempts
        self.args = (f"activity {activity_id!r} failed after {attempts} attempts; "
                     f"last error: {error_type}: {message}",)


class WaitTimeoutError(RomancyError, TimeoutError):
    """Raised inside a workflow when a wait (event or channel message) passed its timeout."""

    def __init__(self, what: str) -> None:
        super().__init__(f"timed out waiting for {what}")


class EventTimeoutError(WaitTimeoutError):
    """``wait_event`` passed its timeout before an event of that type arrived."""


class ReceiveTimeoutError(WaitTimeoutError):
    """``receive`` passed its timeout before a message arrived on the channel."""


class ChannelError(RomancyError):
    """A channel operation was used wrongly (receive without subscribing, mode mismatch...)."""


class ActivityTimeoutError(RomancyError, TimeoutError):
    """One attempt of an activity ran longer than its timeout and was cancelled.

    Recorded as the attempt's failure (retryable, like any other error): the workflow sees it as
    the ``error_type`` of :class:`ActivityFailedError` or, once every attempt timed out or
    failed, of :class:`RetriesExhaustedError`.
    """

    def __init__(self, activity_id: str, timeout: float) -> None:
        self.activity_id = activity_id
        self.timeout = timeout
        super().__init__(f"activity {activity_id!r} did not finish within {timeout:g} s")
