"""Awaitables a workflow coroutine yields to the replay core. They never touch an event loop."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from ._events import RetryPolicy, WaitKind

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class ActivityCall(Generic[T]):
    """A call of an activity inside a workflow. ``await`` it, or pass several to ``ctx.gather``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    explicit_id: str | None = None
    result_hint: Any = Any
    retry: RetryPolicy | None = None
    compensation: str | None = None
    timeout: float | None = None
    """Seconds one attempt may run (None: the activity's own timeout, if any)."""
    definition: object | None = None
    """The activity's definition, opaque here: the driver runs it without a registry lookup."""
    compensation_definition: object | None = None
    """The compensation's definition (opaque), carried like ``definition``."""

    def with_id(self, activity_id: str) -> ActivityCall[T]:
        """The same call under an explicit activity id (stable across code changes)."""
        if not activity_id or "#" in activity_id or activity_id.startswith("compensate:"):
            raise ValueError(
                "an explicit activity id must be non-empty, without '#' or a 'compensate:' prefix")
        return replace(self, explicit_id=activity_id)

    def with_retry(self, policy: RetryPolicy) -> ActivityCall[T]:
        """The same call with another retry policy than the activity's own."""
        return replace(self, retry=policy)

    def with_timeout(self, seconds: float) -> ActivityCall[T]:
        """The same call with another start-to-close timeout per attempt than the activity's
        own: an attempt still running after ``seconds`` is cancelled and counts as a retryable
        failure (``ActivityTimeoutError``)."""
        return replace(self, timeout=check_timeout(seconds))

    def __await__(self) -> Generator[Any, Any, T]:
        result: T = yield self
        return result


def check_timeout(seconds: float) -> float:
    """A valid activity timeout: a finite number of seconds greater than zero."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
            0 < seconds < float("inf")):
        raise ValueError(f"an activity timeout must be a number of seconds > 0, not {seconds!r}")
    return float(seconds)


@dataclass(eq=False, slots=True)
class GatherRequest:
    calls: tuple[ActivityCall[Any], ...]

    def __await__(self) -> Generator[Any, Any, list[Any]]:
        result: list[Any] = yield self
        return result


@dataclass(eq=False, slots=True)
class WaitRequest(Generic[T]):
    """Wait for an event of a type, a channel message, or a timer; ``deadline`` is absolute."""

    kind: WaitKind
    key: str
    deadline: float | None
    data_hint: Any = Any

    def __await__(self) -> Generator[Any, Any, T]:
        result: T = yield self
        return result


@dataclass(eq=False, slots=True)
class RecurRequest:
    input: Any

    def __await__(self) -> Generator[Any, Any, Any]:
        yield self
        raise AssertionError("recur never returns")  # the core closes the coroutine
