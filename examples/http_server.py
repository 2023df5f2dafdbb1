"""romancy_trio over HTTP, two ways.

1. In your own Trio program: open the App, then serve it in the same nursery::

       python examples/http_server.py [DATABASE_URL] [PORT]

2. From the command line, with hypercorn's Trio worker; the ASGI app ``asgi`` below opens the
   App itself during ASGI lifespan startup and closes it at shutdown::

       ROMANCY_TRIO_URL=sqlite:///http-demo.db \\
           hypercorn -k trio --bind 127.0.0.1:8000 examples.http_server:asgi

   (``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` does the same for workflows named
   in ``ROMANCY_TRIO_WORKFLOWS``.)

Then, for example::

    curl -s -X POST localhost:8000/workflows/http_example_checkout \\
         -H 'content-type: application/json' -d '{"input": {"order_id": "o-1"}}'
    # -> {"instance_id": "..."}; the workflow now waits for a payment event
    curl -s -X POST localhost:8000/ -H 'content-type: application/cloudevents+json' -d '{
         "specversion": "1.0", "id": "pay-1", "source": "/payments",
         "type": "payment.received", "romancyinstanceid": "<instance_id>",
         "data": {"cents": 4200}}'
    curl -s 'localhost:8000/instances/<instance_id>/result?timeout=5'
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

import trio

from romancy_trio import WorkflowContext, open_app, wait_event, workflow
from romancy_trio.asgi import make_lifespan_app, serve_http


@workflow
async def http_example_greet(ctx: WorkflowContext, name: str) -> str:
    return f"hello, {name}"


@workflow
async def http_example_checkout(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    payment = await wait_event(ctx, "payment.received", timeout=3600)
    return {"order_id": order["order_id"], "paid": payment.data, "payment_id": payment.id}


WORKFLOWS: list[Any] = [http_example_greet, http_example_checkout]
DEFAULT_URL = "sqlite:///romancy-http-demo.db"

# Way 2: `hypercorn -k trio examples.http_server:asgi`
asgi = make_lifespan_app(
    os.environ.get("ROMANCY_TRIO_URL", DEFAULT_URL),
    workflows=WORKFLOWS,
    bearer_token=os.environ.get("ROMANCY_TRIO_TOKEN") or None,
)


# Way 1: the App and the HTTP server share one nursery; Ctrl+C stops both cleanly.
async def main(url: str, port: int) -> None:
    async with open_app(url, workflows=WORKFLOWS) as app:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(serve_http, app, port=port))
            print(f"serving {url} on http://127.0.0.1:{bound}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    trio.run(main, args[0] if args else DEFAULT_URL, int(args[1]) if len(args) > 1 else 8000)
