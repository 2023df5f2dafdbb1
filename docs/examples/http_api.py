# tested on: sqlite, postgres, mysql
import uuid

import httpx
import trio
from romancy_trio import WorkflowContext, open_app, wait_event, workflow
from romancy_trio.asgi import serve_http

@workflow
async def shipment(ctx: WorkflowContext, parcel: str) -> str:
    event = await wait_event(ctx, "parcel.delivered")
    return f"{parcel} delivered at {event.data['where']}"

async def main() -> None:
    async with open_app() as app, trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, app)  # hypercorn.trio.serve on 127.0.0.1
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            started = await http.post("/workflows/shipment", json={"input": "P-1"})
            iid = started.json()["instance_id"]
            while (await http.get(f"/instances/{iid}")).json()["status"] != "waiting":
                await trio.sleep(0.01)
            event = {"specversion": "1.0", "type": "parcel.delivered", "source": "courier",
                     "id": str(uuid.uuid4()), "data": {"where": "door"}}
            reply = await http.post("/", json=event,
                                    headers={"content-type": "application/cloudevents+json"})
            print(reply.status_code, reply.json())  # 202 only after the event is committed
            print((await http.get(f"/instances/{iid}/result?timeout=10")).json())
        nursery.cancel_scope.cancel()

trio.run(main)
