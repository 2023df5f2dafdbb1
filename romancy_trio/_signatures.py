"""The parameters after ``ctx`` of a workflow or an activity: binding and checking arguments.

A workflow with one parameter stores its input as that value (as it always has); a workflow
with several stores a JSON object by parameter name, defaults applied. Arguments are checked
against their annotations with :func:`romancy_trio._codec.convert`. Pure code: no I/O.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from ._codec import convert, dumps, loads
from ._errors import ConfigurationError, InvalidInputError

RESERVED = ("instance_id", "timeout")
"""Keyword arguments of ``App.start``/``App.run``: no workflow parameter may use these names."""

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        return {}


def check_value(value: Any, hint: Any, path: str) -> None:
    """Raise InvalidInputError unless ``value`` travels as JSON and comes back as ``hint``."""
    if hint is Any or hint is object:
        return
    if (isinstance(hint, type) and isinstance(value, hint)
            and not (hint in (int, float) and isinstance(value, bool))):
        return  # already what is declared (and what the activity gets: the value itself)
    convert(loads(dumps(value)), hint, path)


class Parameters:
    """The parameters of ``fn`` after its first (the context), with their annotations."""

    def __init__(self, fn: Callable[..., Any], what: str) -> None:
        params = list(inspect.signature(fn).parameters.values())
        if not params or params[0].kind in _VARIADIC or params[0].kind is \
                inspect.Parameter.KEYWORD_ONLY:
            raise ConfigurationError(f"{what} takes the context as its first positional parameter")
        self.what = what
        self.signature = inspect.Signature(params[1:])
        self.params = params[1:]
        self.hints = hints(fn)
        positional = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in self.params)
        self._positional: tuple[tuple[Any, str], ...] | None = tuple(
            (self.hint(p.name), f"{what}, parameter {p.name!r}") for p in self.params
        ) if positional else None
        """For a call giving every parameter positionally: (hint, path) of each, in order."""

    def hint(self, name: str) -> Any:
        return self.hints.get(name, Any)

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """An activity call: the arguments bind to the parameters and match their types."""
        if not kwargs and self._positional is not None and len(args) == len(self._positional):
            for value, (hint, path) in zip(args, self._positional, strict=True):
                check_value(value, hint, path)  # (what bind() would have paired)
            return
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"{self.what}: {exc}") from None
        for param in self.params:
            if param.name in bound.arguments and param.kind not in _VARIADIC:
                check_value(bound.arguments[param.name], self.hint(param.name),
                            f"{self.what}, parameter {param.name!r}")


class WorkflowInput:
    """How a workflow's arguments are stored (one value, or an object by name) and restored."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        what = f"@workflow {name!r}"
        self.params = Parameters(fn, what)
        for param in self.params.params:
            if param.kind in _VARIADIC:
                raise ConfigurationError(
                    f"{what}: parameter {param.name!r} is variadic; a workflow's arguments are "
                    "stored by name, so each needs its own parameter")
            if param.name in RESERVED:
                raise ConfigurationError(
                    f"{what}: parameter name {param.name!r} is reserved (App.start and App.run "
                    f"take {', '.join(RESERVED)} as keywords); rename it")
        self.name = name
        self.count = len(self.params.params)
        single = self.params.params[0] if self.count == 1 else None
        self.hint: Any = (type(None) if self.count == 0 else
                          self.params.hint(single.name) if single is not None else
                          dict[str, Any])
        """The declared type of the stored input (for several parameters: an object)."""

    # -- App.start: the caller's arguments -> the value stored ------------------------------
    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The input to store for ``start(wf, *args, **kwargs)`` (not yet checked)."""
        if self.count == 0:
            if kwargs or len(args) > 1 or (args and args[0] is not None):
                raise InvalidInputError(f"workflow {self.name!r} takes no input, got "
                                        f"{(args or tuple(kwargs.values()))[0]!r:.80}")
            return None
        if self.count == 1:
            param = self.params.params[0]
            extra = set(kwargs) - {param.name, "input"}
            if extra or len(args) + len(kwargs) > 1:
                raise InvalidInputError(
                    f"workflow {self.name!r} takes one argument ({param.name!r}), got "
                    f"{len(args)} positional and keyword(s) {sorted(kwargs)}")
            if args:
                return args[0]
            if kwargs:
                return next(iter(kwargs.values()))
            return None if param.default is inspect.Parameter.empty else param.default
        try:
            bound = self.params.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"workflow {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def encode(self, value: Any) -> str:
        """The JSON text to store; InvalidInputError (naming the parameter) on a bad value."""
        text = dumps(value)
        self.restore(loads(text))
        return text

    # -- the runner: the stored value -> the call ------------------------------------------
    def restore(self, stored: Any, what: str = "input") -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments for ``fn(ctx, *args, **kwargs)`` from the stored (decoded JSON) input."""
        if self.count == 0:
            convert(stored, type(None), what)
            return (), {}
        if self.count == 1:
            return self._split({self.params.params[0].name: convert(stored, self.hint, what)})
        values = self.by_name(stored, what)
        for param in self.params.params:
            if param.name in values:
                values[param.name] = convert(values[param.name], self.params.hint(param.name),
                                             f"parameter {param.name!r}")
            elif param.default is inspect.Parameter.empty:
                raise InvalidInputError(f"{what}: missing parameter {param.name!r} of workflow "
                                        f"{self.name!r}")
        return self._split(values)

    def by_name(self, stored: Any, what: str = "input") -> dict[str, Any]:
        """The object of a workflow with several parameters: unknown names are an error."""
        if not isinstance(stored, dict):
            raise InvalidInputError(f"{what}: workflow {self.name!r} takes several parameters "
                                    f"and its input is a JSON object by name, not "
                                    f"{type(stored).__name__}")
        unknown = set(stored) - {p.name for p in self.params.params}
        if unknown:
            raise InvalidInputError(f"{what}: unknown parameter(s) {sorted(unknown)} of "
                                    f"workflow {self.name!r}")
        return dict(stored)

    def call_args(self, stored: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments for ``App.start`` from an input given as JSON (HTTP API), unchecked."""
        if self.count == 0:
            return ((stored,) if stored is not None else ()), {}
        if self.count == 1:
            return (stored,), {}
        return self._split(self.by_name(stored))

    def _split(self, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = tuple(values.pop(p.name) for p in self.params.params
                     if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.name in values)
        return args, values
