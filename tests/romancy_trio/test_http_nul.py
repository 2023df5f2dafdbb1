"""U+0000 inside JSON values (event data, workflow input) is kept exactly on every backend: values
are stored as JSON text, where it is the ASCII escape ``\\u0000``."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Backend, fetch
from .test_http import served
from .test_http_edge import EDGE_WORKFLOWS, _status_is, edge_waits, until

NASTY: Any = {"a\u0000": ["x\u0000y", {"\u0000": "\u0000"}, "\u0000\u0000"], "plain": 1}


async def test_nul_in_event_data_reaches_the_workflow_exactly(backend: Backend) -> None:
    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        sent = []
        for n, mode in enumerate(["structured", "binary", "batch", "events"]):
            iid = await app.start(edge_waits, mode)
            await until(lambda iid=iid: _status_is(app, iid, "waiting"))
            event = {"specversion": "1.0", "id": f"nul-{n}", "source": "/nul", "type": "edge.go",
                     "subject": mode, "romancyinstanceid": iid, "data": NASTY}
            if mode == "structured":
                r = await client.post("/", content=json.dumps(event),
                                      headers={"content-type": "application/cloudevents+json"})
            elif mode == "binary":
                headers = {f"ce-{k}": v for k, v in event.items() if k != "data"}
                r = await client.post("/", content=json.dumps(NASTY),
                                      headers={**headers, "content-type": "application/json"})
            elif mode == "batch":
                r = await client.post(
                    "/", content=json.dumps([event]),
                    headers={"content-type": "application/cloudevents-batch+json"})
            else:
                r = await client.post("/events", json={
                    "type": "edge.go", "source": "/nul", "id": f"nul-{n}", "subject": mode,
                    "instance_id": iid, "data": NASTY})
            assert r.status_code == 202, (mode, r.text)
            assert await app.result(iid, timeout=30) == {
                "name": mode, "subject": mode, "data": NASTY}, mode
            result = await client.get(f"/instances/{iid}/result", params={"timeout": 5})
            assert result.json()["result"]["data"] == NASTY
            sent.append(f"nul-{n}")
        rows = await fetch(app, "SELECT event_id, body FROM workflow_events ORDER BY event_id")
        assert [row[0] for row in rows] == sent
        for _, body in rows:
            assert "\x00" not in body and json.loads(body)["data"] == NASTY
        again = await client.post("/", content=json.dumps(
            {"specversion": "1.0", "id": "nul-0", "source": "/nul", "type": "edge.go",
             "data": NASTY}), headers={"content-type": "application/cloudevents+json"})
        assert again.json()["duplicate"] is True


async def test_nul_in_workflow_input_is_kept_exactly(backend: Backend) -> None:
    async with served(backend) as (_app, client):
        r = await client.post("/workflows/http_echo", json={"input": NASTY})
        assert r.status_code == 202, r.text
        iid = r.json()["instance_id"]
        result = await client.get(f"/instances/{iid}/result", params={"timeout": 30})
        assert result.json()["result"] == {"echo": NASTY}
        assert (await client.get(f"/instances/{iid}")).json()["input"] == NASTY
        # ids are not values: a NUL in an instance id is still refused
        r = await client.post("/workflows/http_echo", json={"input": 1, "instance_id": "a\u0000"})
        assert r.status_code == 400
