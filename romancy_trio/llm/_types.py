"""Values and errors of durable LLM calls. Frozen values; errors name the problem, never a key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from romancy_trio import RomancyError

RESPONSE_KIND = "romancy_trio.llm.response"
"""Marks a recorded LLM response in history (how `usage` finds them)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call, or summed over calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens, self.calls + other.calls)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked for: its call id, the tool's name and the decoded arguments."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class Response:
    """A model's answer as recorded: replay returns this same value without calling the model."""

    text: str
    model: str
    stop_reason: str | None
    usage: Usage
    provider: str
    call_id: str
    """The activity id the call was recorded under (e.g. ``llm.call:2``)."""
    fingerprint: str
    """sha256 of the request as the workflow built it (see `NonDeterminismError`)."""
    tool_calls: tuple[ToolCall, ...] = field(default=())

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Response:
        usage = data.get("usage") or {}
        return cls(
            text=str(data.get("text") or ""), model=str(data.get("model") or ""),
            stop_reason=data.get("stop_reason"),
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), 1),
            provider=str(data.get("provider") or ""), call_id=str(data.get("call_id") or ""),
            fingerprint=str(data.get("fingerprint") or ""),
            tool_calls=tuple(ToolCall(str(t["id"]), str(t["name"]), dict(t["arguments"]))
                             for t in data.get("tool_calls") or ()))


class LLMError(RomancyError):
    """Base of the errors of durable LLM calls."""


class LLMConfigError(LLMError):
    """No provider, model or key could be found, or the request is malformed (not retried)."""


class LLMRequestError(LLMError):
    """The provider refused the request with a 4xx other than 429 (not retried)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMRateLimitError(LLMError):
    """429 from the provider (retried per the RetryPolicy, after its ``Retry-After``)."""


class LLMServerError(LLMError):
    """5xx from the provider (retried)."""


class LLMTimeoutError(LLMError):
    """The request timed out or could not connect (retried)."""


class LLMValidationError(LLMError):
    """``call_parse``: no answer validated; the message shows the last validation problem."""


NON_RETRYABLE = ("LLMRequestError",)
UNTIL_FIXED = ("LLMConfigError",)
"""Retried without limit (at most ``max_interval`` apart) until an operator fixes the setting."""
