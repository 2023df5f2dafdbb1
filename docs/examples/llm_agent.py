# tested by: tests/romancy_trio/llm/test_readme_llm.py
import trio
from romancy_trio import ActivityContext, WorkflowContext, llm, open_app, workflow

@llm.tool
async def weather(ctx: ActivityContext, city: str) -> str:
    """Today's weather in a city."""
    return {"Paris": "sunny, 21 C", "Rome": "rain, 17 C"}.get(city, "unknown")

@workflow
async def plan_trip(ctx: WorkflowContext, question: str) -> str:
    agent = llm.DurableAgent(ctx, tools=[weather], system="You plan weekend trips.")
    answer = await agent.send(question)  # model turn, tools, model turn... until it answers
    return answer.text

async def agent_main() -> None:
    async with open_app() as app:
        llm.set_app_defaults(app, provider="anthropic", model="claude-sonnet-4-5")
        print(await app.run(plan_trip, "Paris or Rome this weekend?", timeout=300))

trio.run(agent_main)
