"""Tools (each one an activity) and `DurableAgent`, a multi-turn conversation with tools whose
every model turn and every tool run is recorded: a crash resumes it without repeating either."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from romancy_trio import (
    Activity,
    ActivityFailedError,
    InvalidInputError,
    RetryPolicy,
    WorkflowContext,
    activity,
)

from ._calls import Options, build_request, run_request
from ._parse import _adapter
from ._types import LLMConfigError, LLMError, Response, Usage

DEFAULT_MAX_TURNS = 10


class Tool:
    """A function the model may call; it runs as an activity named ``llm.tool.<name>``."""

    def __init__(self, fn: Callable[..., Any], *, name: str, description: str,
                 transactional: bool | None, retry: RetryPolicy | None,
                 timeout: float | None) -> None:
        self.name = name
        self.description = description
        self.activity: Activity[..., Any] = activity(
            name=f"llm.tool.{name}", transactional=transactional, retry=retry,
            timeout=timeout)(fn)
        self.parameters = _parameters(fn, name)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters}

    def __repr__(self) -> str:
        return f"<llm.tool {self.name}>"


def _parameters(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """The JSON schema of the tool's arguments (its parameters after the ActivityContext)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    hints = typing.get_type_hints(fn)
    props: dict[str, Any] = {}
    required = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise LLMConfigError(f"tool {name!r}: parameter {p.name!r} must be passable by name")
        props[p.name] = _adapter(hints.get(p.name, Any)).json_schema()
        if p.default is p.empty:
            required.append(p.name)
    return {"type": "object", "properties": props, "required": required}


ToolFn = Callable[..., Awaitable[Any]] | Callable[..., Any]


@typing.overload
def tool(fn: ToolFn, /) -> Tool: ...
@typing.overload
def tool(*, name: str | None = None, description: str | None = None,
         transactional: bool | None = None, retry: RetryPolicy | None = None,
         timeout: float | None = None) -> Callable[[ToolFn], Tool]: ...
def tool(fn: Any = None, /, *, name: str | None = None, description: str | None = None,
         transactional: bool | None = None, retry: RetryPolicy | None = None,
         timeout: float | None = None) -> Any:
    """Declare a tool: an ``@activity``-style function ``(ctx: ActivityContext, ...)`` whose
    other parameters (annotated) become the JSON schema the model sees; the docstring is its
    description. Each call the model asks for runs once, as a recorded activity."""

    def wrap(f: ToolFn) -> Tool:
        return Tool(f, name=name or f.__name__, description=description or (
            inspect.getdoc(f) or f.__name__), transactional=transactional, retry=retry,
            timeout=timeout)

    return wrap(fn) if fn is not None else wrap


class DurableAgent:
    """A stateful conversation with tools, inside one workflow run::

        agent = llm.DurableAgent(ctx, tools=[get_weather], system="You plan trips.")
        answer = await agent.send("Paris or Rome this weekend?")

    Each `send` loops: a model turn (recorded); each tool it asks for runs as an activity
    (recorded), its result goes back; until the model answers without tools, or
    ``max_turns`` model turns (then `LLMError`). The conversation so far is ``messages``.
    ``channel``: stream each model turn's text to that channel as it arrives (as `stream`
    does; the turns are then ``llm.stream:N`` activities), tool calls included.
    """

    def __init__(self, ctx: WorkflowContext, *, tools: Sequence[Tool] = (),
                 system: str | None = None, provider: str | None = None,
                 model: str | None = None, max_tokens: int | None = None,
                 temperature: float | None = None, retry: RetryPolicy | None = None,
                 timeout: float | None = None, max_turns: int = DEFAULT_MAX_TURNS,
                 channel: str | None = None) -> None:
        self.ctx = ctx
        self.channel = channel
        self.tools = {t.name: t for t in tools}
        if len(self.tools) != len(tools):
            raise LLMConfigError("two tools of one agent have the same name")
        self.options = Options(provider, model, system, max_tokens, temperature, retry, timeout)
        self.max_turns = max_turns
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage()
        self.turns = 0

    async def send(self, prompt: str) -> Response:
        """Add the user's message and run the conversation until the model answers."""
        self.messages.append({"role": "user", "content": prompt})
        specs = [t.spec() for t in self.tools.values()]
        for _ in range(self.max_turns):
            request = build_request(self.messages, self.options, tools=specs)
            response = await run_request(self.ctx, request, self.options,
                                         channel=self.channel)
            self.turns += 1
            self.usage += response.usage
            self.messages.append({"role": "assistant", "content": response.text,
                                  "tool_calls": [c.to_json() for c in response.tool_calls]})
            if not response.tool_calls:
                return response
            for c in response.tool_calls:
                self.messages.append({"role": "tool", "tool_call_id": c.id, "name": c.name,
                                      "content": await self._run_tool(c.name, c.arguments)})
        raise LLMError(f"the agent did not answer within {self.max_turns} model turns")

    async def _run_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """The tool's result as text; a tool that does not exist, bad arguments or a failed
        tool are told to the model (deterministically: the failure is recorded)."""
        found = self.tools.get(name)
        if found is None:
            return f"error: there is no tool named {name!r}; tools: {sorted(self.tools)}"
        try:
            result = await found.activity(self.ctx, **arguments)
        except InvalidInputError as exc:
            return f"error: bad arguments for {name!r}: {exc}"
        except ActivityFailedError as exc:
            return f"error: tool {name!r} failed: {exc.error_type}: {exc.message}"
        return result if isinstance(result, str) else json.dumps(result, default=str)
