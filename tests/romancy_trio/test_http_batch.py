"""CloudEvents batched mode over a real server: validate all, store all or nothing, one receipt
per event; the first bad event is named by its index."""

from __future__ import annotations

import json
from typing import Any

import pytest

from romancy_trio.asgi._batch import BadBatch, parse_batch
from romancy_trio.asgi._cloudevents import BadEvent

from .conftest import Backend, fetch
from .test_http import served
from .test_http_edge import EDGE_WORKFLOWS, _status_is, edge_waits, until

BATCH = [(b"content-type", b"application/cloudevents-batch+json")]
HEADERS = {"content-type": "application/cloudevents-batch+json"}


def ev(n: int, **attrs: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"b-{n}", "source": "/batch", "type": "batch.t",
            "data": {"n": n}, **attrs}


def body(*events: Any) -> bytes:
    return json.dumps(list(events)).encode()


def test_a_batch_is_checked_event_by_event_and_the_first_bad_one_is_named() -> None:
    assert parse_batch(BATCH, b"[]") == []
    events = parse_batch(BATCH, body(ev(0), ev(1, subject="s")))
    assert [e.id for e in events] == ["b-0", "b-1"] and events[1].subject == "s"
    cases: list[tuple[bytes, int, str]] = [
        (body(ev(0), ev(1), {**ev(2), "type": ""}), 2, "'type' must not be empty"),
        (body(ev(0), "nope"), 1, "JSON object"),
        (body({k: v for k, v in ev(0).items() if k != "id"}), 0, "missing required"),
        (body(ev(0), ev(1, subject="x" * 1025)), 1, "longer than 1024"),
        (body(ev(0), ev(1, data=1, data_base64="AA==")), 1, "both 'data' and 'data_base64'"),
    ]
    for raw, index, message in cases:
        with pytest.raises(BadBatch) as info:
            parse_batch(BATCH, raw)
        assert info.value.index == index and message in info.value.message, info.value.message
        assert info.value.message.startswith(f"event {index} of the batch: ")
    with pytest.raises(BadEvent, match="JSON array"):
        parse_batch(BATCH, json.dumps(ev(0)).encode())
    with pytest.raises(BadEvent, match="at most 3") as too_many:
        parse_batch(BATCH, body(*(ev(n) for n in range(4))), max_events=3)
    assert too_many.value.status == 413
    latin1 = [(b"content-type", b"application/cloudevents-batch+json; charset=latin-1")]
    with pytest.raises(BadEvent, match="UTF-8"):
        parse_batch(latin1, b"[]")


async def test_a_batch_is_stored_atomically_with_one_receipt_per_event(backend: Backend) -> None:
    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        iid = await app.start(edge_waits, "batch")
        await until(lambda: _status_is(app, iid, "waiting"))
        events = [ev(0), ev(1, type="edge.go", subject="to-you", romancyinstanceid=iid), ev(2)]
        r = await client.post("/", content=body(*events), headers=HEADERS)
        assert r.status_code == 202, r.text
        assert r.json() == {"receipts": [
            {"id": "b-0", "source": "/batch", "duplicate": False, "delivered_to": []},
            {"id": "b-1", "source": "/batch", "duplicate": False, "delivered_to": [iid]},
            {"id": "b-2", "source": "/batch", "duplicate": False, "delivered_to": []},
        ]}
        assert await app.result(iid, timeout=30) == {
            "name": "batch", "subject": "to-you", "data": {"n": 1}}
        again = await client.post("/", content=body(*events, ev(3)), headers=HEADERS)
        assert again.status_code == 202
        assert [x["duplicate"] for x in again.json()["receipts"]] == [True, True, True, False]
        rows = await fetch(app, "SELECT event_id FROM workflow_events ORDER BY event_id")
        assert [row[0] for row in rows] == ["b-0", "b-1", "b-2", "b-3"]
        twice = await client.post("/", content=body(ev(9), ev(9)), headers=HEADERS)
        assert [x["duplicate"] for x in twice.json()["receipts"]] == [False, True]
        rows = await fetch(app, "SELECT event_id FROM workflow_events WHERE event_id = 'b-9'")
        assert len(rows) == 1
        empty = await client.post("/", content=b"[]", headers=HEADERS)
        assert empty.status_code == 202 and empty.json() == {"receipts": []}


async def test_a_bad_batch_stores_nothing_and_names_the_index(backend: Backend) -> None:
    async with served(backend, max_batch=5) as (app, client):
        r = await client.post("/", content=body(ev(0), ev(1), {**ev(2), "specversion": "0.3"}),
                              headers=HEADERS)
        assert r.status_code == 400 and r.json()["index"] == 2
        assert "event 2 of the batch: unsupported specversion" in r.json()["error"]
        # valid events, but one targets an instance that does not exist: all or nothing
        r = await client.post("/", content=body(ev(0), ev(1, romancyinstanceid="ghost"), ev(2)),
                              headers=HEADERS)
        assert r.status_code == 404 and r.json()["index"] == 1
        assert "ghost" in r.json()["error"] and "nothing was stored" in r.json()["error"]
        r = await client.post("/", content=body(*(ev(n) for n in range(6))), headers=HEADERS)
        assert r.status_code == 413 and "at most 5" in r.json()["error"]
        r = await client.post("/", content=b'[{"specversion": "1.0",', headers=HEADERS)
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        assert await fetch(app, "SELECT event_id FROM workflow_events") == []
