# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import (ActivityContext, ChildWorkflowFailedError, WorkflowContext, activity,
                          open_app, workflow)

@activity
async def resize(ctx: ActivityContext, image: str) -> str:
    if image.endswith(".gif"):
        raise ValueError(f"cannot resize {image}")
    return image.replace(".png", "-small.png")

@workflow
async def thumbnail(ctx: WorkflowContext, image: str) -> str:
    return await resize(ctx, image)

@workflow
async def album(ctx: WorkflowContext, images: list[str]) -> list[str]:
    # start every child first (each start is recorded: replay never starts one twice)...
    children = [await ctx.start_child(thumbnail, image) for image in images]
    done = []
    for child in children:  # ...then wait for them, holding no worker while they run
        try:
            done.append(await child.result())
        except ChildWorkflowFailedError as exc:  # the child's own error type and message
            done.append(f"{child.instance_id}: {exc.error_type}: {exc.message}")
    done.append(await ctx.run_child(thumbnail, "cover.png"))  # start + result in one call
    return done

async def main() -> None:
    async with open_app() as app:
        iid = await app.start(album, ["a.png", "b.gif"])
        print(await app.result(iid, timeout=30))
        for child in await app.children(iid):  # each shows its parent_instance_id
            print(child.instance_id, child.status, child.parent_instance_id == iid)

trio.run(main)
