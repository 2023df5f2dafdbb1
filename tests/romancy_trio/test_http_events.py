"""CloudEvents intake over real HTTP: both content modes and POST /events reach App.send_event,
and 202 comes only with the stored receipt."""

from __future__ import annotations

import base64
import json
from typing import Any

import trio

from romancy_trio import App, WorkflowContext, open_app, wait_event, workflow

from .conftest import Backend
from .test_http import client_for


@workflow
async def http_wait_paid(ctx: WorkflowContext, order: str) -> dict[str, Any]:
    ev = await wait_event(ctx, "http.order.paid", timeout=60)
    return {
        "order": order,
        "id": ev.id,
        "source": ev.source,
        "data": ev.data,
        "subject": ev.subject,
        "extensions": dict(ev.extensions),
    }


WORKFLOWS = [http_wait_paid]
CE = {"content-type": "application/cloudevents+json"}


def structured(**attrs: Any) -> bytes:
    return json.dumps(
        {"specversion": "1.0", "source": "/pay", "type": "http.order.paid", **attrs}
    ).encode()


async def serve_and(backend: Backend, body: Any) -> None:
    from functools import partial

    from romancy_trio.asgi import serve_http

    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app))
            async with client_for(port) as client:
                await body(app, client)
            nursery.cancel_scope.cancel()


async def test_structured_event_reaches_its_instance_and_duplicates_are_flagged(
    backend: Backend,
) -> None:
    async def body(app: App, client: Any) -> None:
        iid = await app.start(http_wait_paid, "o-1")
        event = structured(
            id="pay-1", subject="o-1", data={"cents": 42}, romancyinstanceid=iid, region="eu1"
        )
        r = await client.post("/", headers=CE, content=event)
        assert r.status_code == 202, r.text
        receipt = r.json()
        assert receipt["id"] == "pay-1" and receipt["source"] == "/pay"
        assert receipt["duplicate"] is False
        assert await app.result(iid, timeout=20) == {
            "order": "o-1",
            "id": "pay-1",
            "source": "/pay",
            "data": {"cents": 42},
            "subject": "o-1",
            "extensions": {"region": "eu1"},
        }
        again = await client.post("/", headers=CE, content=event)
        assert again.status_code == 202
        assert again.json()["duplicate"] is True and again.json()["delivered_to"] == []

    await serve_and(backend, body)


async def test_binary_mode_event_reaches_its_instance(backend: Backend) -> None:
    async def body(app: App, client: Any) -> None:
        iid = await app.start(http_wait_paid, "o-2")
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "pay-2",
            "ce-source": "/pay",
            "ce-type": "http.order.paid",
            "ce-romancyinstanceid": iid,
            "content-type": "application/json",
        }
        r = await client.post("/", headers=headers, content=b'{"cents": 7}')
        assert r.status_code == 202, r.text
        assert (await app.result(iid, timeout=20))["data"] == {"cents": 7}

    await serve_and(backend, body)


async def test_binary_data_may_hold_nul_bytes(backend: Backend) -> None:
    async def body(app: App, client: Any) -> None:
        raw = b"\x00\x01\xffpdf"
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "blob-1",
            "ce-source": "/files",
            "ce-type": "http.file",
            "content-type": "application/octet-stream",
        }
        r = await client.post("/", headers=headers, content=raw)
        assert r.status_code == 202, r.text
        b64 = structured(id="blob-2", data_base64=base64.b64encode(raw).decode())
        assert (await client.post("/", headers=CE, content=b64)).status_code == 202

    await serve_and(backend, body)


async def test_plain_json_events_route(backend: Backend) -> None:
    async def body(app: App, client: Any) -> None:
        iid = await app.start(http_wait_paid, "o-3")
        r = await client.post(
            "/events",
            json={"type": "http.order.paid", "source": "/pay", "data": [1, 2], "instance_id": iid},
        )
        assert r.status_code == 202, r.text
        generated = r.json()["id"]
        assert len(generated) == 32
        result = await app.result(iid, timeout=20)
        assert result["data"] == [1, 2] and result["id"] == generated
        r = await client.post("/events", json={"type": "x", "source": "/s", "data": "\u0000"})
        assert r.status_code == 202, r.text  # kept exactly: see test_http_nul.py

    await serve_and(backend, body)


async def test_broadcast_event_is_delivered_to_the_waiting_instance(backend: Backend) -> None:
    async def body(app: App, client: Any) -> None:
        iid = await app.start(http_wait_paid, "o-4")
        with trio.fail_after(20):
            for n in range(10_000):  # until the instance is waiting for the type
                r = await client.post("/", headers=CE, content=structured(id=f"b-{n}"))
                assert r.status_code == 202, r.text
                if r.json()["delivered_to"]:
                    break
                await trio.sleep(0.05)
        assert r.json()["delivered_to"] == [iid]
        assert (await app.result(iid, timeout=20))["order"] == "o-4"

    await serve_and(backend, body)
