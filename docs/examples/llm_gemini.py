# tested by: tests/romancy_trio/llm/test_readme_llm.py
import trio
from romancy_trio import WorkflowContext, llm, open_app, workflow

@llm.durable_call(name="translate", system="You translate into French.", max_tokens=200)
def translate(text: str) -> str:
    return f"Translate: {text}"

@workflow
async def french(ctx: WorkflowContext, text: str) -> list[str]:
    first = await translate(ctx, text)  # recorded as llm.call.translate:1
    again = await llm.call_messages(ctx, [
        {"role": "user", "content": f"Translate into French: {text}"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Now more formally, please."}])
    return [first.text, again.text]

async def gemini_main() -> None:
    async with open_app() as app:
        llm.set_app_defaults(app, provider="gemini", model="gemini-2.5-flash")
        print(await app.run(french, "See you tomorrow!", timeout=120))

trio.run(gemini_main)
