# tested on: sqlite, postgres, mysql
import json
import uuid

import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow
from romancy_trio.asgi import serve_asgi
from romancy_trio.outbox import RelayerConfig

received: list[dict] = []

async def sink(scope, receive, send):  # a tiny CloudEvents receiver standing in for yours
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    received.append(json.loads(body))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})

@activity
async def place_order(ctx: ActivityContext, order_id: str) -> None:
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS orders (id VARCHAR(64) PRIMARY KEY)")
    await ctx.db.execute("INSERT INTO orders VALUES (?)", (order_id,))
    # written in the same transaction as the INSERT: sent if and only if the order exists
    await ctx.send_event("order.placed", {"order_id": order_id})

@workflow
async def order(ctx: WorkflowContext, order_id: str) -> None:
    await place_order(ctx, order_id)

async def main() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_asgi, sink)
        relayer = RelayerConfig(sink_url=f"http://127.0.0.1:{port}/")
        async with open_app(relayer=relayer) as app:
            order_id = f"A-{uuid.uuid4().hex[:8]}"
            await app.run(order, order_id, timeout=30)
            with trio.fail_after(10):  # delivery is at-least-once: look for this order's event
                while not (mine := [e for e in received if e["data"]["order_id"] == order_id]):
                    await trio.sleep(0.05)
        print(mine[0]["type"], mine[0]["data"], mine[0]["id"])
        nursery.cancel_scope.cancel()

trio.run(main)
