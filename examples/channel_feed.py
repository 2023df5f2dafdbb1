"""Watch channel traffic from outside the app: the websocket feed and its client helper.

    python examples/channel_feed.py [DATABASE_URL] [PORT] [--serve]

Serves an App over HTTP (the feed is ``ws://127.0.0.1:PORT/channels/ws``), runs a workflow that
publishes order events on channel ``orders``, publishes one more from outside any workflow, and
prints what a `romancy_trio.client.subscribe` feed receives; then exits, or with ``--serve`` keeps
serving so that other clients can watch, e.g.::

    websocat 'ws://127.0.0.1:8000/channels/ws?channel=orders'              # live from now
    websocat 'ws://127.0.0.1:8000/channels/ws?channel=orders&after=0'      # everything retained

The first frame is ``{"subscribed": {"orders": <id>}}``; every later one is a message
``{"id", "channel", "data", "metadata", "target", "published_at"}``.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import trio

from romancy_trio import WorkflowContext, open_app, publish, sleep, workflow
from romancy_trio.asgi import serve_http
from romancy_trio.client import subscribe


@workflow
async def feed_example_orders(ctx: WorkflowContext, count: int) -> int:
    for n in range(count):
        await publish(
            ctx,
            "orders",
            {"order": f"o-{n}", "cents": 100 * (n + 1)},
            metadata={"from": ctx.instance_id},
        )
        await sleep(ctx, 0.2)  # a durable timer: survives a restart of this process
    return count


async def main(url: str, port: int, keep_serving: bool) -> None:
    async with open_app(url, workflows=[feed_example_orders]) as app:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(serve_http, app, port=port))
            feed_url = f"ws://127.0.0.1:{bound}/channels/ws"
            print(f"feed at {feed_url}?channel=orders", flush=True)
            async with subscribe(feed_url, ["orders"]) as feed:
                await app.start(feed_example_orders, 3)
                await app.publish("orders", {"note": "published outside any workflow"})
                seen = 0
                async for message in feed:
                    when = message.published_at.isoformat(timespec="milliseconds")
                    print(f"#{message.id} {when} {message.data} {message.metadata}", flush=True)
                    seen += 1
                    if seen == 4:
                        break
                print(f"resume later with after={feed.positions}", flush=True)
            if not keep_serving:
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    args: list[Any] = [a for a in sys.argv[1:] if not a.startswith("--")]
    database = args[0] if args else "sqlite:///romancy-feed-demo.db"
    trio.run(main, database, int(args[1]) if len(args) > 1 else 8000, "--serve" in flags)
