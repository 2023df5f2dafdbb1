# tested by: tests/romancy_trio/llm/test_readme_llm.py
import os

import trio
from romancy_trio import WorkflowContext, llm, open_app, workflow
from romancy_trio.asgi import serve_http
from romancy_trio.client import subscribe

@workflow
async def story(ctx: WorkflowContext, topic: str) -> str:
    told = await llm.stream(ctx, f"A three-sentence story about {topic}.", channel="story")
    return told.text

async def stream_main() -> None:
    async with open_app() as app, trio.open_nursery() as nursery:
        llm.set_app_defaults(app, provider="openai",
                             model=os.environ.get("LLM_MODEL", "gpt-4o-mini"))
        port = await nursery.start(serve_http, app)
        async with subscribe(f"ws://127.0.0.1:{port}/channels/ws", ["story"]) as feed:
            iid = await app.start(story, "a durable workflow")
            async for message in feed:  # {"delta", "n"}... then {"done", "text", "n"}
                if message.metadata["instance_id"] != iid:
                    continue
                if message.data.get("done"):
                    break
                print(message.data["delta"], end="", flush=True)
        print("\nrecorded:", await app.result(iid, timeout=120))
        nursery.cancel_scope.cancel()

trio.run(stream_main)
