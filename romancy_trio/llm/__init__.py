"""Durable LLM calls: every model call is an activity, recorded like one, so replay after a
crash returns the recorded answer instead of calling (and paying for) the model again.

Install the providers' SDKs with ``pip install 'romancy-trio[llm]'``. Built only on the public
``romancy_trio`` facade (an import-linter contract keeps it so).

* ``await llm.call(ctx, prompt, ...)`` / ``llm.call_messages(ctx, messages)`` -> `Response`
* ``await llm.call_parse(ctx, prompt, ResultType)`` -> a validated value
* ``@llm.durable_call(...)`` - a named, reusable call; ``@llm.tool`` + `DurableAgent`
* ``await llm.stream(ctx, prompt, channel=...)`` - the text published as it arrives
* ``llm.set_app_defaults(app, provider=..., model=...)``; ``await llm.usage(app, iid)``
"""

from __future__ import annotations

from romancy_trio import App

from ._agent import DurableAgent as DurableAgent
from ._agent import Tool as Tool
from ._agent import tool as tool
from ._calls import DEFAULT_RETRY as DEFAULT_RETRY
from ._calls import call as call
from ._calls import call_messages as call_messages
from ._calls import stream as stream
from ._config import set_app_defaults as set_app_defaults
from ._parse import DurableCall as DurableCall
from ._parse import call_parse as call_parse
from ._parse import durable_call as durable_call
from ._types import RESPONSE_KIND
from ._types import LLMConfigError as LLMConfigError
from ._types import LLMError as LLMError
from ._types import LLMRateLimitError as LLMRateLimitError
from ._types import LLMRequestError as LLMRequestError
from ._types import LLMServerError as LLMServerError
from ._types import LLMTimeoutError as LLMTimeoutError
from ._types import LLMValidationError as LLMValidationError
from ._types import Response as Response
from ._types import ToolCall as ToolCall
from ._types import Usage as Usage


async def usage(app: App, instance_id: str) -> Usage:
    """Tokens of every LLM call recorded in the instance's current run, summed
    (``calls`` counts them). Reads the history through `App.history`."""
    total = Usage()
    for event in await app.history(instance_id):
        payload = event.payload
        if (event.kind == "activity_completed" and isinstance(payload, dict)
                and payload.get("kind") == RESPONSE_KIND):
            u = payload.get("usage") or {}
            total += Usage(int(u.get("input_tokens", 0)), int(u.get("output_tokens", 0)), 1)
    return total


__all__ = [
    "DEFAULT_RETRY",
    "DurableAgent",
    "DurableCall",
    "LLMConfigError",
    "LLMError",
    "LLMRateLimitError",
    "LLMRequestError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMValidationError",
    "Response",
    "Tool",
    "ToolCall",
    "Usage",
    "call",
    "call_messages",
    "call_parse",
    "durable_call",
    "set_app_defaults",
    "stream",
    "tool",
    "usage",
]
