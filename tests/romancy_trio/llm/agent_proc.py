"""An agent workflow with a tool, and a worker process that runs it:
``python -m tests.romancy_trio.llm.agent_proc URL SCHEMA WORKER_ID``.

Environment: ``FAKE_LLM_URL`` (the fake provider), ``PAUSE_AT_TOOL=n``: the n-th tool run in
this process writes ``MARKER`` and hangs before doing anything, so a test can SIGKILL the
process right after the model turn that asked for it was recorded. Prints ``ready``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, llm, open_app, workflow

PROVIDERS = ["openai", "openai_responses", "anthropic", "gemini"]
KEYS = {"openai": "sk-test-OPENAI-secret-0123456789",
        "anthropic": "sk-ant-test-ANTHROPIC-secret-0123456789",
        "gemini": "AIza-test-GEMINI-secret-0123456789"}
RUNS = {"n": 0}


@llm.tool
async def weather(ctx: ActivityContext, city: str, unit: str = "C") -> str:
    """Today's weather in a city."""
    RUNS["n"] += 1
    if os.environ.get("PAUSE_AT_TOOL") == str(RUNS["n"]):
        Path(os.environ["MARKER"]).write_text(city)
        await trio.sleep_forever()
    async with httpx.AsyncClient() as http:  # the fake counts tool runs
        await http.post(f"{os.environ['FAKE_LLM_URL']}/tool/weather",
                        json={"city": city, "unit": unit})
    return {"Paris": "sunny, 21", "Rome": "rain, 17"}.get(city, "unknown")


@workflow
async def streamed_trip_agent(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    agent = llm.DurableAgent(ctx, tools=[weather], provider=provider, channel="trip",
                             system="You compare the weather of cities.")
    answer = await agent.send("Paris or Rome this weekend?")
    return {"text": answer.text, "turns": agent.turns, "messages": len(agent.messages)}


@workflow
async def trip_agent(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    agent = llm.DurableAgent(ctx, tools=[weather], provider=provider,
                             system="You compare the weather of cities.")
    answer = await agent.send("Paris or Rome this weekend?")
    return {"text": answer.text, "turns": agent.turns,
            "tokens": agent.usage.total_tokens, "messages": len(agent.messages)}


def configure(app: Any, fake_url: str) -> None:
    llm.set_app_defaults(app, model="agent-model", api_keys=KEYS, base_urls={
        "openai": f"{fake_url}/v1", "anthropic": fake_url, "gemini": fake_url})


async def main(url: str, schema: str, worker_id: str) -> None:
    config = AppConfig(schema=schema, lease_ttl=2.0, heartbeat_interval=0.5,
                       fallback_interval=5.0)
    async with open_app(url, worker_id=worker_id, workflows=[trip_agent], config=config) as app:
        configure(app, os.environ["FAKE_LLM_URL"])
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
