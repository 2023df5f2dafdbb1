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
    """A caller-chosen instance id is already used: by an instance of another workflow, or
    by one of the same workflow that was started with a different input."""


class NonDeterminismError(RomancyError):
    """Replaying a workflow's history, the code asked for something other than what was recorded."""


class WorkflowFailedError(RomancyError):
    """A workflow ended with an error.

    ``error_type``/``message``: the original error's qualified type name and message - for
    a failed activity that the workflow did not catch, the activity's own exception (not
    :class:`ActivityFailedError`). ``activity_id``/``activity_name``: the activity it came
    from (None if it did not come from one). ``attempts``: for :class:`RetriesExhaustedError`,
    how many attempts were made (``error_type`` is then the last cause's).
    """

    def __init__(self, instance_id: str, error_type: str, message: str, *,
                 activity_id: str | None = None, activity_name: str | None = None,
                 attempts: int | None = None) -> None:
        self.instance_id = instance_id
        self.error_type = error_type
        self.message = message
        self.activity_id = activity_id
        self.activity_name = activity_name
        self.attempts = attempts
        where = "" if activity_id is None else f" in activity {activity_id!r}"
        tries = "" if attempts is None else f" after {attempts} attempts"
        super().__init__(
            f"workflow {instance_id!r} failed{where}{tries}: {error_type}: {message}")


class WorkflowCancelledError(RomancyError):
    """The workflow instance was cancelled before it finished."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"workflow {instance_id!r} was cancelled")


class InstanceFinishedError(RomancyError):
    """An operation that needs a live instance (cancel, ``send_to``) was asked of a finished
    one."""


class ActivityFailedError(RomancyError):
    """Raised inside a workflow when an activity it called failed.

    The same error is raised on replay (it is recorded in history), so a workflow that catches it
    takes the same path every time. ``error_type``: qualified name of the activity's exception;
    ``activity_name``: the activity's registered name (None if unknown).
    """

    def __init__(self, activity_id: str, error_type: str, message: str, *,
                 activity_name: str | None = None) -> None:
        self.activity_id = activity_id
        self.activity_name = activity_name
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

    def __init__(self, activity_id: str, error_type: str, message: str, attempts: int, *,
                 activity_name: str | None = None) -> None:
        super().__init__(activity_id, error_type, message, activity_name=activity_name)
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
    """A channel operation was used wrongly (a bad channel name, a mode mismatch...)."""


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


class ChildWorkflowFailedError(RomancyError):
    """A child workflow ended without a result, raised in its parent by ``child.result()``.

    ``child_instance_id`` / ``workflow_name``: which child. ``error_type`` / ``message``: the
    child's own error (as :class:`WorkflowFailedError` names it), or ``"cancelled"`` when the
    child was cancelled (``cancelled`` is then True)."""

    def __init__(self, child_instance_id: str, workflow_name: str, error_type: str,
                 message: str, *, cancelled: bool = False) -> None:
        self.child_instance_id = child_instance_id
        self.workflow_name = workflow_name
        self.error_type = error_type
        self.message = message
        self.cancelled = cancelled
        how = "was cancelled" if cancelled else f"failed: {error_type}: {message}"
        super().__init__(f"child workflow {child_instance_id!r} ({workflow_name}) {how}")
