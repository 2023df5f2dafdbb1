"""``@workflow`` and ``@activity``: definitions, their declared types, and the registry."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ._errors import ConfigurationError, UnknownWorkflowError
from ._replay import ActivityCall, RetryPolicy, WorkflowContext

if typing.TYPE_CHECKING:
    from ._activity_context import ActivityContext

P = ParamSpec("P")
R = TypeVar("R")


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        return {}


class Activity(Generic[P, R]):
    """An activity. Inside a workflow, ``await my_activity(ctx, ...)`` runs it once, durably."""

    def __init__(
        self,
        fn: Callable[Concatenate[ActivityContext, P], Awaitable[R]],
        *,
        name: str,
        transactional: bool,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"@activity {name!r} must be an 'async def' function")
        self.fn = fn
        self.name = name
        self.transactional = transactional
        self.retry = retry
        self.compensation_name: str | None = None
        self.compensation_activity: Activity[..., Any] | None = None

        self.result_hint: Any = _hints(fn).get("return", Any)
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
        return ActivityCall(self.name, args, dict(kwargs), None, self.result_hint, None,
                            self.compensation_name)

    def compensation(self, fn: Callable[..., Awaitable[Any]]) -> Activity[..., Any]:
        """Declare how to undo this activity (saga). Decorate an ``async def`` that takes the
        activity's own arguments plus its result as the last argument::

            @reserve.compensation
            async def release(ctx: ActivityContext, order: Order, reservation: str) -> None: ...

        If the workflow later fails or is cancelled, the compensations of the activities that
        completed run newest first, each exactly once and recorded in history.
        """
        comp: Activity[..., Any] = Activity(fn, name=f"{self.name}.compensation",
                                            transactional=self.transactional, retry=self.retry)
        default_registry.add(comp)
        self.compensation_name = comp.name
        self.compensation_activity = comp
        return comp

    def __repr__(self) -> str:
        return f"<activity {self.name}>"


InputT = TypeVar("InputT")


class Workflow(Generic[InputT, R]):
    """A workflow: ``async def fn(ctx)`` or ``async def fn(ctx, input)``; deterministic code."""

    def __init__(self, fn: Callable[..., Awaitable[R]], *, name: str,
                 determinism_guard: bool = True) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"@workflow {name!r} must be an 'async def' function")
        params = list(inspect.signature(fn).parameters.values())
        if not 1 <= len(params) <= 2:
            raise ConfigurationError(
                f"@workflow {name!r} takes (ctx) or (ctx, input), not {len(params)} parameters"
            )
        self.fn = fn
        self.name = name
        self.determinism_guard = determinism_guard
        self.takes_input = len(params) == 2
        hints = _hints(fn)
        self.input_hint: Any = hints.get(params[1].name, Any) if self.takes_input else type(None)
        self.result_hint: Any = hints.get("return", Any)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

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


@overload
def activity(fn: Callable[Concatenate[ActivityContext, P], Awaitable[R]], /) -> Activity[P, R]: ...
@overload
def activity(
    *, name: str | None = None, transactional: bool = True
) -> Callable[[Callable[Concatenate[ActivityContext, P], Awaitable[R]]], Activity[P, R]]: ...
def activity(fn: Any = None, /, *, name: str | None = None, transactional: bool = True,
             retry: RetryPolicy | None = None) -> Any:
    """Declare an activity: ``async def fn(ctx: ActivityContext, ...)``.

    Transactional (default): the activity's database work through ``ctx.session``, its history
    record, and (later) its outbox rows commit in one transaction - exactly once.
    ``transactional=False``: for external calls; at-least-once (a crash after the call but before
    the record re-runs it). ``retry``: this activity's policy (default: the app's).
    """

    def wrap(f: Callable[Concatenate[ActivityContext, P], Awaitable[R]]) -> Activity[P, R]:
        act = Activity(f, name=name or f.__name__, transactional=transactional, retry=retry)
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
    """Declare a workflow: ``async def fn(ctx: WorkflowContext, input)`` (input optional).

    ``determinism_guard=False``: let this workflow's own code call ``time.time()``,
    ``random``, ``uuid.uuid4()``... (normally a `WorkflowAPIError`; see `AppConfig`).
    """

    def wrap(f: Callable[..., Awaitable[R]]) -> Workflow[Any, R]:
        wf: Workflow[Any, R] = Workflow(f, name=name or f.__name__,
                                        determinism_guard=determinism_guard)
        default_registry.add(wf)
        return wf

    return wrap(fn) if fn is not None else wrap
