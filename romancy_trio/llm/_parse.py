"""``call_parse`` (a validated pydantic model, dataclass or TypedDict) and ``durable_call``
(a named, reusable LLM definition)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from romancy_trio import Activity, ActivityContext, RetryPolicy, WorkflowContext, activity

from ._calls import DEFAULT_RETRY, Options, _run_call, build_request, run_request, user
from ._types import LLMConfigError, LLMValidationError

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_PARSE_ATTEMPTS = 3


def _adapter(result_type: Any) -> Any:
    try:
        from pydantic import TypeAdapter
    except ImportError:  # pragma: no cover - the llm extra installs pydantic
        raise LLMConfigError("call_parse needs pydantic: pip install 'romancy-trio[llm]'"
                             ) from None
    return TypeAdapter(result_type)


def schema_of(result_type: Any) -> tuple[Any, dict[str, Any]]:
    adapter = _adapter(result_type)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", getattr(result_type, "__name__", "result"))[:64]
    return adapter, {"name": name, "schema": adapter.json_schema()}


async def parse_messages(ctx: WorkflowContext, messages: Sequence[Mapping[str, Any]],
                         result_type: Any, opts: Options, attempts: int,
                         definition: Activity[Any, Any] | None = None) -> Any:
    """Ask until an answer validates (each answer recorded); the problem goes back to the model."""
    from pydantic import ValidationError

    if attempts < 1:
        raise LLMConfigError("attempts must be at least 1")
    adapter, schema = schema_of(result_type)
    convo = [dict(m) for m in messages]
    problem = ""
    for _ in range(attempts):
        request = build_request(convo, opts, schema=schema)
        response = await run_request(ctx, request, opts, definition=definition)
        try:
            return adapter.validate_json(response.text)
        except ValidationError as exc:
            problem = str(exc)
        convo += [{"role": "assistant", "content": response.text},
                  {"role": "user", "content": "That answer does not match the schema:\n"
                   f"{problem}\nAnswer again with JSON that matches it."}]
    raise LLMValidationError(
        f"no answer validated as {schema['name']} after {attempts} attempts; the last "
        f"problem: {problem}")


async def call_parse(ctx: WorkflowContext, prompt: str, result_type: type[T], *,
                     attempts: int = DEFAULT_PARSE_ATTEMPTS, system: str | None = None,
                     provider: str | None = None, model: str | None = None,
                     max_tokens: int | None = None, temperature: float | None = None,
                     retry: RetryPolicy | None = None, timeout: float | None = None) -> T:
    """Ask for a value of ``result_type`` (pydantic model, dataclass, TypedDict...) through
    the provider's structured output (OpenAI ``json_schema``, an Anthropic tool, Gemini's
    response schema). An answer that fails validation is recorded and asked again with the
    problem, up to ``attempts`` answers; then `LLMValidationError` shows the last problem."""
    opts = Options(provider, model, system, max_tokens, temperature, retry, timeout)
    value: T = await parse_messages(ctx, user(prompt), result_type, opts, attempts)
    return value


async def _definition_call(actx: ActivityContext, request: dict[str, Any]) -> dict[str, Any]:
    return await _run_call(actx, request)


class DurableCall(Generic[P]):
    """A named LLM call (see :func:`durable_call`). ``await summarize(ctx, *args)``."""

    def __init__(self, build: Callable[P, str | Sequence[Mapping[str, Any]]], *, name: str,
                 options: Options, result_type: Any, attempts: int) -> None:
        self.build = build
        self.name = name
        self.options = options
        self.result_type = result_type
        self.attempts = attempts
        self.activity: Activity[Any, Any] = activity(
            name=f"llm.call.{name}", transactional=False, retry=DEFAULT_RETRY)(_definition_call)
        self.__doc__ = build.__doc__

    async def __call__(self, ctx: WorkflowContext, *args: P.args, **kwargs: P.kwargs) -> Any:
        """The model's `Response` (or, with ``result_type``, the validated value)."""
        built = self.build(*args, **kwargs)
        messages = user(built) if isinstance(built, str) else list(built)
        if self.result_type is not None:
            return await parse_messages(ctx, messages, self.result_type, self.options,
                                        self.attempts, self.activity)
        return await run_request(ctx, build_request(messages, self.options), self.options,
                                 definition=self.activity)

    def with_options(self, **overrides: Any) -> DurableCall[P]:
        """The same definition (same name, so the same recorded ids) with other options."""
        return DurableCall(self.build, name=self.name,
                           options=Options(**overrides).over(self.options),
                           result_type=self.result_type, attempts=self.attempts)

    def __repr__(self) -> str:
        return f"<durable_call {self.name}>"


@overload
def durable_call(build: Callable[P, str | Sequence[Mapping[str, Any]]], /) -> DurableCall[P]:
    ...
@overload
def durable_call(
    *, name: str | None = None, provider: str | None = None, model: str | None = None,
    system: str | None = None, max_tokens: int | None = None,
    temperature: float | None = None, retry: RetryPolicy | None = None,
    timeout: float | None = None, result_type: Any = None,
    attempts: int = DEFAULT_PARSE_ATTEMPTS,
) -> Callable[[Callable[P, str | Sequence[Mapping[str, Any]]]], DurableCall[P]]: ...
def durable_call(build: Any = None, /, *, name: str | None = None, provider: str | None = None,
                 model: str | None = None, system: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 retry: RetryPolicy | None = None, timeout: float | None = None,
                 result_type: Any = None, attempts: int = DEFAULT_PARSE_ATTEMPTS) -> Any:
    """Define a reusable, named LLM call by decorating the function that builds its prompt (a
    str, or a list of messages) from its arguments. Its calls are recorded under its name
    (activity ids ``llm.call.<name>:N``); options set here override the app's defaults."""
    opts = Options(provider, model, system, max_tokens, temperature, retry, timeout)

    def wrap(fn: Callable[P, str | Sequence[Mapping[str, Any]]]) -> DurableCall[P]:
        return DurableCall(fn, name=name or fn.__name__, options=opts,
                           result_type=result_type, attempts=attempts)

    return wrap(build) if build is not None else wrap

