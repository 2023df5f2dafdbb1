# tested by: tests/romancy_trio/llm/test_readme_llm.py
import os

import trio
from pydantic import BaseModel
from romancy_trio import WorkflowContext, llm, open_app, workflow

class Verdict(BaseModel):
    sentiment: str
    score: float

@workflow
async def review(ctx: WorkflowContext, text: str) -> dict:
    summary = await llm.call(ctx, f"Summarize in one sentence: {text}", system="Be brief.")
    verdict = await llm.call_parse(ctx, f"Sentiment of: {text}", Verdict)  # validated
    return {"summary": summary.text, "sentiment": verdict.sentiment,
            "tokens": summary.usage.total_tokens}

async def review_main() -> None:
    async with open_app() as app:
        llm.set_app_defaults(  # e.g. Ollama: OPENAI_BASE_URL=http://127.0.0.1:11434/v1
            app, provider="openai", model=os.environ.get("LLM_MODEL", "llama3.2"),
            base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            api_key=os.environ.get("OPENAI_API_KEY", "ollama"))
        iid = await app.start(review, "Late delivery, but the support team was wonderful.")
        print(await app.result(iid, timeout=120))
        print(await llm.usage(app, iid))  # the current run's recorded calls, summed
        print((await app.status(iid)).counters)  # every run: {'llm.calls': 2.0, ...}

trio.run(review_main)
