# tested on: sqlite, postgres, mysql
import json
import uuid
from functools import partial

import httpx
import trio
from romancy_trio import open_app
from romancy_trio.asgi import HttpTimeouts, serve_http

BATCH = {"content-type": "application/cloudevents-batch+json"}

async def main() -> None:
    async with open_app() as app, trio.open_nursery() as nursery:
        port = await nursery.start(partial(
            serve_http, app, bearer_token="s3cret", max_batch=100,
            allowed_origins=["https://shop.example.com"], timeouts=HttpTimeouts(body=10.0)))
        auth = {"authorization": "Bearer s3cret"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth) as http:
            readings = [{"specversion": "1.0", "type": "sensor.reading", "source": "/sensors/7",
                         "id": str(uuid.uuid4()), "data": {"celsius": c, "note": "a\u0000b"}}
                        for c in (20.5, 21.0)]
            reply = await http.post("/", content=json.dumps(readings), headers=BATCH)
            print(reply.status_code, [r["duplicate"] for r in reply.json()["receipts"]])
            broken = [*readings, {"specversion": "1.0", "type": "", "source": "/s", "id": "x"}]
            reply = await http.post("/", content=json.dumps(broken), headers=BATCH)
            print(reply.status_code, reply.json())  # 400, index 2; nothing of it stored
            ticket = (await http.post("/channels/ws/ticket")).json()  # for a browser page
            print(ticket["subprotocols"][0], ticket["expires_in"])
        nursery.cancel_scope.cancel()

trio.run(main)
