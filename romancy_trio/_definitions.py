"""``@workflow`` and ``@activity``: definitions, their declared types, and the registry."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from ._errors import ConfigurationError, UnknownWorkflowError
from ._replay import ActivityCall, RetryPolicy, WorkflowContext
from ._replay._requests import check_timeout
from ._signatures import Parameters, WorkflowInput

if typing.TYPE_CHECKING:
    from ._activity_context import ActivityContext

P = ParamSpec("P")
R = TypeVar("R")


ActivityFn = Callable[Concatenate["ActivityContext", P], Awaitable[R]] | Callable[
    Concatenate["ActivityContext", P], R]
"""An activity's function: ``async def`` (runs on Trio, or on the app's asyncio loop) or plain
``def`` (runs in a worker thread)."""

Loop = Literal["trio", "asyncio"]


class Activity(Generic[P, R]):
    """An activity. Inside a workflow, ``await my_activity(ctx, ...)`` runs it once, durably."""

    def __init__(
        self,
        fn: ActivityFn[P, R],
        *,
        name: str,
        transactional: bool | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        loop: Loop = "trio",
    ) -> None:
        what = f"@activity {name!r}"
        if inspect.isasyncgenfunction(fn) or not callable(fn):
            raise ConfigurationError(f"{what} must be an 'async def' or a plain 'def' function")
        is_async = inspect.iscoroutinefunction(fn)
        if loop not in ("trio", "asyncio"):
            raise ConfigurationError(f"{what}: loop must be 'trio' or 'asyncio', not {loop!r}")
        if loop == "asyncio" and not is_async:
            raise ConfigurationError(f"{what}: loop='asyncio' runs an 'async def' function")
        if loop == "asyncio" and transactional:
            raise ConfigurationError(
                f"{what}: an activity on the asyncio loop cannot be transactional (its session "
                "lives on Trio); use transactional=False, or a Trio activity for database work")
        try:
            self.timeout = None if timeout is None else check_timeout(timeout)
        except ValueError as exc:
            raise ConfigurationError(f"{what}: {exc}") from None
        self.fn: Callable[..., Any] = fn
        self.name = name
        self.transactional = loop == "trio" if transactional is None else transactional
        self.runs_on: Literal["trio", "thread", "asyncio"] = (
            loop if is_async else "thread")
        """Where an attempt runs: Trio, a worker thread (plain ``def``), the asyncio loop."""
        self.retry = retry
        self.compensation_name: str | None = None
        self.compensation_activity: Activity[..., Any] | None = None
        self.params = Parameters(fn, f"activity {name!r}")
        self.result_hint: Any = self.params.hints.get("return", Any)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(
        self, ctx: WorkflowContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> ActivityCall[R]:
        if not isinstance(ctx, WorkflowContext):
            raise TypeError(
                f"activity {self.name!r} is called from a workflow as {self.name}(ctx, ...) with "
                f"the workflow's context, not {type(ctx).__qualname__}"
            )
        self.params.check_call(args, kwargs)
        return ActivityCall(self.name, args, dict(kwargs), None, self.result_hint, None,
                            self.compensation_name, definition=self,
                            compensation_definition=self.compensation_activity)

    def compensation(self, fn: ActivityFn[..., Any]) -> Activity[..., Any]:
        """Declare how to undo this activity (saga). Decorate a function (``async def`` or
        ``def``) that takes the activity's own arguments plus its result as the last argument::

            @reserve.compensation
            async def release(ctx: ActivityContext, order: Order, reservation: str) -> None: ...

        If the workflow later fails or is cancelled, the compensations of the activities that
        completed run newest first, each exactly once and recorded in history.
        """
        comp: Activity[..., Any] = Activity(
            fn, name=f"{self.name}.compensation", transactional=self.transactional,
            retry=self.retry, timeout=self.timeout,
            loop="asyncio" if self.runs_on == "asyncio" and inspect.iscoroutinefunction(fn)
            else "trio")
        default_registry.add(comp)
        self.compensation_name = comp.name
        self.compensation_activity = comp
        return comp

    def __repr__(self) -> str:
        return f"<activity {self.name}>"


InputT = TypeVar("InputT")


class Workflow(Generic[InputT, R]):
    """A workflow: ``async def fn(ctx, ...)`` with any number of parameters; deterministic code.

    One parameter: its value is the stored input. Several: the input is stored as a JSON object
    by parameter name (defaults applied).
    """

    def __init__(self, fn: Callable[..., Awaitable[R]], *, name: str,
                 determinism_guard: bool = True) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"@workflow {name!r} must be an 'async def' function")
        self.fn = fn
        self.name = name
        self.determinism_guard = determinism_guard
        self.input = WorkflowInput(fn, name)
        self.takes_input = self.input.count > 0
        self.input_hint: Any = self.input.hint
        self.result_hint: Any = self.input.params.hints.get("return", Any)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def replay(self, history: Sequence[Mapping[str, Any]], *, input: Any = None,
               started_at: float = 0.0) -> None:
        """Replay a recorded history (`App.history` steps as JSON: ``seq``, ``kind``, ``key``,
        ``payload``, ``at``) against this code with no side effects, as a worker resuming
        the instance would; raise the `NonDeterminismError` that worker would meet.
        ``input``: the instance's input as JSON. See `romancy_trio.testing.replay`."""
        from ._replay_check import replay

        replay(self, history, input=input, started_at=started_at)

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


@dataclass
class Registry:
    """Workflows and activities by name. Decorators add to :data:`default_registry`."""

    workflows: dict[str, Workflow[Any, Any]]
    activities: dict[str, Activity[..., Any]]

    @classmethod
    def empty(cls) -> Registry:
        return cls({}, {})

    def copy(self) -> Registry:
        return Registry(dict(self.workflows), dict(self.activities))


    def add(self, item: Workflow[Any, Any] | Activity[..., Any]) -> None:
        table: dict[str, Any] = self.workflows if isinstance(item, Workflow) else self.activities
        existing = table.get(item.name)
        if existing is not None and existing.fn is not item.fn:
            same = (existing.fn.__module__, existing.fn.__qualname__) == (
                item.fn.__module__,
                item.fn.__qualname__,
            )
            if not same:  # re-importing the same module may redefine; a clash of names may not
                raise ConfigurationError(
                    f"two different definitions are named {item.name!r}: "
                    f"{existing.fn.__qualname__} and {item.fn.__qualname__}"
                )
        table[item.name] = item

    def workflow(self, name: str) -> Workflow[Any, Any]:
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownWorkflowError(name, list(self.workflows)) from None

    @classmethod
    def of(cls, items: Iterable[Workflow[Any, Any] | Activity[..., Any]]) -> Registry:
        reg = cls.empty()
        for item in items:
            reg.add(item)
            comp = getattr(item, "compensation_activity", None)
            if comp is not None:
                reg.add(comp)
        return reg


default_registry = Registry.empty()


class _ActivityDecorator(Protocol):
    @overload
    def __call__(
        self, fn: Callable[Concatenate[ActivityContext, P], Awaitable[R]], /
    ) -> Activity[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[ActivityContext, P], R], /) -> Activity[P, R]: ...


@overload
def activity(
    fn: Callable[Concatenate[ActivityContext, P], Awaitable[R]], /
) -> Activity[P, R]: ...
@overload
def activity(fn: Callable[Concatenate[ActivityContext, P], R], /) -> Activity[P, R]: ...
@overload
def activity(
    *, name: str | None = None, transactional: bool | None = None,
    retry: RetryPolicy | None = None, timeout: float | None = None, loop: Loop = "trio",
) -> _ActivityDecorator: ...
def activity(fn: Any = None, /, *, name: str | None = None, transactional: bool | None = None,
             retry: RetryPolicy | None = None, timeout: float | None = None,
             loop: Loop = "trio") -> Any:
    """Declare an activity: ``async def fn(ctx: ActivityContext, ...)`` or plain ``def``.

    ``async def`` runs on Trio; a plain ``def`` runs in a worker thread (at most
    ``AppConfig.activity_threads`` at once); ``loop="asyncio"`` runs an ``async def`` on the
    app's asyncio event loop, for asyncio-only client libraries.
    Transactional (the default, except on asyncio): the activity's database work through
    ``ctx.db`` (``ctx.blocking_db`` in a plain ``def``), its history record, and its outbox
    rows commit in one transaction - exactly once. ``transactional=False``: for external
    calls; at-least-once (a crash after the call but before the record re-runs it).
    ``retry``: this activity's policy (default: the app's). ``timeout``: seconds one attempt
    may run before it is cancelled and counted as a (retryable) ``ActivityTimeoutError``.
    """

    def wrap(f: Any) -> Activity[Any, Any]:
        act: Activity[Any, Any] = Activity(f, name=name or f.__name__,
                                           transactional=transactional, retry=retry,
                                           timeout=timeout, loop=loop)
        default_registry.add(act)
        return act

    return wrap(fn) if fn is not None else wrap


@overload
def workflow(fn: Callable[..., Awaitable[R]], /) -> Workflow[Any, R]: ...
@overload
def workflow(
    *, name: str | None = None, determinism_guard: bool = True
) -> Callable[[Callable[..., Awaitable[R]]], Workflow[Any, R]]: ...
def workflow(fn: Any = None, /, *, name: str | None = None,
             determinism_guard: bool = True) -> Any:
    """Declare a workflow: ``async def fn(ctx: WorkflowContext, ...)``, with no parameter, one
    (its input) or several (positional and keyword; stored as an object by name).

    ``determinism_guard=False``: let this workflow's own code call ``time.time()``,
    ``random``, ``uuid.uuid4()``... (normally a `WorkflowAPIError`; see `AppConfig`).
    """

    def wrap(f: Callable[..., Awaitable[R]]) -> Workflow[Any, R]:
        wf: Workflow[Any, R] = Workflow(f, name=name or f.__name__,
                                        determinism_guard=determinism_guard)
        default_registry.add(wf)
        return wf

    return wrap(fn) if fn is not None else wrap
