"""Sans-IO parts of romancy_trio.llm: Retry-After, fingerprints, request checks, options."""

from __future__ import annotations

import email.utils
import time

import pytest

from romancy_trio import RetryPolicy, llm
from romancy_trio.llm._calls import Options, build_request
from romancy_trio.llm._config import fingerprint
from romancy_trio.llm._providers import _anthropic_messages, _retry_after


def test_retry_after_seconds_milliseconds_and_dates() -> None:
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (_retry_after({"retry-after": soon}) or 0) <= 30
    assert _retry_after({"retry-after": "tomorrow-ish"}) is None
    assert _retry_after({}) is None and _retry_after(None) is None


def test_a_fingerprint_depends_on_what_the_workflow_asked_only() -> None:
    a = build_request([{"role": "user", "content": "hi"}], Options(model="m", temperature=0.2))
    same = build_request([{"content": "hi", "role": "user"}], Options(temperature=0.2, model="m"))
    other = build_request([{"role": "user", "content": "hi!"}], Options(model="m"))
    assert fingerprint(a) == fingerprint(same) != fingerprint(other)
    assert len(fingerprint(a)) == 64


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(llm.LLMConfigError, match="message 0: a dict with role"):
        build_request([{"role": "system", "content": "x"}], Options())
    with pytest.raises(llm.LLMConfigError, match="at least one message"):
        build_request([], Options())
    with pytest.raises(llm.LLMConfigError, match="temperature must be a number in"):
        build_request([{"role": "user", "content": "x"}], Options(temperature=5))
    with pytest.raises(llm.LLMConfigError, match="max_tokens must be a positive int"):
        build_request([{"role": "user", "content": "x"}], Options(max_tokens=0))


def test_options_fall_back_level_by_level() -> None:
    policy = RetryPolicy(max_attempts=2)
    merged = Options(model="call", temperature=0.0).over(
        Options(model="definition", system="sys", retry=policy))
    assert merged == Options(model="call", system="sys", temperature=0.0, retry=policy)


def test_anthropic_turns_alternate_with_tool_results_merged() -> None:
    request = {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "name": "t", "arguments": {"x": 1}},
            {"id": "b", "name": "t", "arguments": {"x": 2}}]},
        {"role": "tool", "tool_call_id": "a", "name": "t", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "name": "t", "content": "2"}]}
    out = _anthropic_messages(request)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert [b["tool_use_id"] for b in out[2]["content"]] == ["a", "b"]
