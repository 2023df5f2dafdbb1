"""DurableAgent: model turns and tool runs recorded; a worker SIGKILLed after turn 2 of a
3-turn conversation, and a new process finishes it without repeating a turn or a tool."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from romancy_trio import open_app

from .._procs import start_proc, stop
from ..conftest import Backend, fetch
from .agent_proc import PROVIDERS, configure, streamed_trip_agent, trip_agent
from .fake_provider import FakeProvider, Reply

FINAL = "Paris: sunny, 21. Rome: rain, 17. Go to Paris."


def tool_results(provider: str, body: dict[str, Any]) -> list[str]:
    """The tool results the request carries, in each provider's own format."""
    text = json.dumps(body)
    marker = {"openai": '"role": "tool"', "openai_responses": '"function_call_output"',
              "anthropic": '"tool_result"',
              "gemini": '"functionResponse"'}[provider]
    return [part for part in text.split(marker)[1:]]


def agent_script(provider: str, body: dict[str, Any]) -> Reply:
    """Turn 1: ask for Paris; turn 2: for Rome; turn 3: answer (from the tools' results)."""
    done = tool_results(provider, body)
    if len(done) == 0:
        return Reply(tool_calls=[("weather", {"city": "Paris"})])
    if len(done) == 1:
        assert "sunny, 21" in done[0]
        return Reply(text="Now Rome.", tool_calls=[("weather", {"city": "Rome", "unit": "C"})])
    assert "rain, 17" in done[1]
    return Reply(text=FINAL)


def turns_seen(fake: FakeProvider, provider: str) -> list[int]:
    return [len(tool_results(provider, s.body)) for s in fake.calls(provider)]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_agent_runs_tools_as_activities(
        backend: Backend, fake: FakeProvider, provider: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_URL", fake.url)
    fake.script = agent_script
    async with open_app(backend.url, config=backend.config, workflows=[trip_agent]) as app:
        configure(app, fake.url)
        iid = await app.start(trip_agent, provider)
        result = await app.result(iid, timeout=60)
        assert result == {"text": FINAL, "turns": 3, "tokens": 54, "messages": 6}
        keys = [e.key for e in await app.history(iid)]
        assert keys == ["llm.call:1", "llm.tool.weather:1", "llm.call:2",
                        "llm.tool.weather:2", "llm.call:3"]
    assert turns_seen(fake, provider) == [0, 1, 2]
    assert fake.tools == [("weather", {"city": "Paris", "unit": "C"}),
                          ("weather", {"city": "Rome", "unit": "C"})]
    first = fake.calls(provider)[0].body
    assert "weather" in json.dumps(first) and "Today's weather in a city." in json.dumps(first)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_agent_streams_its_turns_and_runs_the_tools_they_ask_for(
        backend: Backend, fake: FakeProvider, provider: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_URL", fake.url)
    fake.script = agent_script
    async with open_app(backend.url, config=backend.config,
                        workflows=[streamed_trip_agent]) as app:
        configure(app, fake.url)
        iid = await app.start(streamed_trip_agent, provider)
        result = await app.result(iid, timeout=60)
        assert result == {"text": FINAL, "turns": 3, "messages": 6}
        keys = [e.key for e in await app.history(iid)]
        assert [k for k in keys if not k.startswith("publish")] == [
            "llm.stream:1", "llm.tool.weather:1", "llm.stream:2", "llm.tool.weather:2",
            "llm.stream:3"], keys
        rows = await fetch(app, "SELECT data FROM channel_messages WHERE channel = ? "
                                "ORDER BY id", ("trip",))
        done = [d for d in (json.loads(r[0]) for r in rows) if d.get("done")]
        assert [d["text"] for d in done] == ["", "Now Rome.", FINAL]
    seen = fake.calls(provider)
    assert all(s.body.get("stream") or "streamGenerateContent" in s.path for s in seen)
    assert turns_seen(fake, provider) == [0, 1, 2]
    assert fake.tools == [("weather", {"city": "Paris", "unit": "C"}),
                          ("weather", {"city": "Rome", "unit": "C"})]


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_sigkill_after_turn_two_then_a_new_process_finishes_without_repeats(
        backend: Backend, fake: FakeProvider, provider: str, tmp_path: Path) -> None:
    fake.script = agent_script
    marker = tmp_path / "paused"
    args = (backend.url, backend.config.schema)
    env = {"FAKE_LLM_URL": fake.url}
    async with open_app(backend.url, config=backend.config, workflows=[trip_agent],
                        run_workers=False) as app:
        victim = await trio.to_thread.run_sync(lambda: start_proc(
            "tests.romancy_trio.llm.agent_proc", *args, "victim",
            env={**env, "PAUSE_AT_TOOL": "2", "MARKER": str(marker)}))
        try:
            iid = await app.start(trip_agent, provider)
            with trio.fail_after(60):
                while not marker.exists():
                    await trio.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(victim.wait, 10)
        finally:
            stop(victim)
        keys = [e.key for e in await app.history(iid)]
        assert keys == ["llm.call:1", "llm.tool.weather:1", "llm.call:2"]  # after turn 2
        assert turns_seen(fake, provider) == [0, 1]
        rescuer = await trio.to_thread.run_sync(lambda: start_proc(
            "tests.romancy_trio.llm.agent_proc", *args, "rescuer", env=env))
        try:
            result = await app.result(iid, timeout=90)
        finally:
            stop(rescuer)
        assert result["text"] == FINAL and result["turns"] == 3
        assert turns_seen(fake, provider) == [0, 1, 2], "a model turn was repeated"
        assert fake.tools == [("weather", {"city": "Paris", "unit": "C"}),
                              ("weather", {"city": "Rome", "unit": "C"})]
        assert [e.key for e in await app.history(iid)] == [
            "llm.call:1", "llm.tool.weather:1", "llm.call:2", "llm.tool.weather:2",
            "llm.call:3"]


async def test_unknown_tools_and_bad_arguments_are_told_to_the_model(
        backend: Backend, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_URL", fake.url)

    def script(provider: str, body: dict[str, Any]) -> Reply:
        if not tool_results(provider, body):
            return Reply(tool_calls=[("weather", {"town": "Paris"}), ("flights", {})])
        return Reply(text="Sorry, I could not check.")

    fake.script = script
    async with open_app(backend.url, config=backend.config, workflows=[trip_agent]) as app:
        configure(app, fake.url)
        result = await app.run(trip_agent, "openai", timeout=60)
    assert result["text"] == "Sorry, I could not check." and result["turns"] == 2
    told = [m["content"] for m in fake.calls()[1].body["messages"] if m["role"] == "tool"]
    assert len(told) == 2
    assert told[0].startswith("error: bad arguments for 'weather'") and "'city'" in told[0]
    assert told[1] == "error: there is no tool named 'flights'; tools: ['weather']"
    assert fake.tools == []
