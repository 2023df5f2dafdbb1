"""The HTTP API over a real hypercorn (Trio mode) server on 127.0.0.1 and a real httpx client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from romancy_trio import (
    ActivityContext,
    App,
    StorageUnavailableError,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)
from romancy_trio.asgi import serve_asgi, serve_http

from .conftest import Backend


@activity(transactional=False)
async def http_linger(ctx: ActivityContext, seconds: float) -> None:
    await trio.sleep(seconds)


@workflow
async def http_echo(ctx: WorkflowContext, value: Any) -> Any:
    return {"echo": value}


@workflow
async def http_add(ctx: WorkflowContext, numbers: list[int]) -> int:
    return sum(numbers)


@workflow
async def http_boom(ctx: WorkflowContext, why: str) -> None:
    raise ValueError(why)


@workflow
async def http_slow(ctx: WorkflowContext, seconds: float) -> str:
    await http_linger(ctx, seconds)
    return "done"


WORKFLOWS: list[Any] = [http_echo, http_add, http_boom, http_slow, http_linger]
CE_HEADERS = {"content-type": "application/cloudevents+json"}
EVENT = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "http.test"}


@asynccontextmanager
async def served(
    backend: Backend, *, workflows: Sequence[Any] = WORKFLOWS, **options: Any
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    async with open_app(backend.url, workflows=workflows, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app, **options))
            async with client_for(port) as client:
                yield app, client
            nursery.cancel_scope.cancel()


def client_for(port: int, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False, **kwargs
    )


async def test_start_workflow_then_status_and_result(backend: Backend) -> None:
    async with served(backend) as (app, client):
        r = await client.post("/workflows/http_echo", json={"input": {"a": [1, "b"]}})
        assert r.status_code == 202, r.text
        iid = r.json()["instance_id"]
        assert r.headers["location"] == f"/instances/{iid}"
        r = await client.get(f"/instances/{iid}/result", params={"timeout": 20})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "instance_id": iid,
            "status": "completed",
            "result": {"echo": {"a": [1, "b"]}},
        }
        r = await client.get(f"/instances/{iid}")
        body = r.json()
        assert r.status_code == 200
        assert body["status"] == "completed" and body["workflow"] == "http_echo"
        assert body["input"] == {"a": [1, "b"]} and body["result"] == {"echo": {"a": [1, "b"]}}
        assert body["error"] is None and body["run_no"] == 1
        assert body["created_at"] <= body["updated_at"] and "T" in body["created_at"]
        assert (await app.status(iid)).instance_id == iid


async def test_caller_chosen_id_is_idempotent_and_conflicts_are_409(backend: Backend) -> None:
    async with served(backend) as (app, client):
        first = await client.post(
            "/workflows/http_add", json={"input": [1, 2], "instance_id": "k/1"}
        )
        again = await client.post(
            "/workflows/http_add", json={"input": [1, 2], "instance_id": "k/1"}
        )
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json() == {"instance_id": "k/1"}
        assert first.headers["location"] == "/instances/k%2F1"
        r = await client.get("/instances/k%2F1/result", params={"timeout": 20})
        assert r.json()["result"] == 3
        r = await client.post("/workflows/http_echo", json={"input": 1, "instance_id": "k/1"})
        assert r.status_code == 409 and "http_add" in r.json()["error"]
        r = await client.post("/workflows/http_add", json={"input": [2, 1], "instance_id": "k/1"})
        assert r.status_code == 409 and "different input" in r.json()["error"]
        assert len(await app.list_instances()) == 1


async def test_failed_cancelled_and_not_yet_finished_results(backend: Backend) -> None:
    async with served(backend) as (_, client):
        iid = (await client.post("/workflows/http_boom", json={"input": "no stock"})).json()[
            "instance_id"
        ]
        r = await client.get(f"/instances/{iid}/result", params={"timeout": 20})
        assert r.status_code == 409
        body = r.json()
        assert body["status"] == "failed"
        not_from_an_activity = {"type": "ValueError", "message": "no stock",
                                "activity_id": None, "activity_name": None, "attempts": None}
        assert body["workflow_error"] == not_from_an_activity
        r = await client.get(f"/instances/{iid}")
        assert r.json()["error"] == not_from_an_activity

        slow = (await client.post("/workflows/http_slow", json={"input": 30})).json()["instance_id"]
        r = await client.get(f"/instances/{slow}/result", params={"timeout": 0.2})
        assert r.status_code == 408 and r.json()["retryable"] is True
        assert (await client.post(f"/instances/{slow}/cancel")).status_code == 202
        r = await client.get(f"/instances/{slow}/result", params={"timeout": 20})
        assert r.status_code == 409 and r.json()["status"] == "cancelled"


async def test_not_found_conflict_and_method_errors(backend: Backend) -> None:
    async with served(backend) as (_, client):
        for path in ("/instances/nope", "/instances/nope/result"):
            r = await client.get(path)
            assert r.status_code == 404 and "nope" in r.json()["error"]
        assert (await client.post("/instances/nope/cancel")).status_code == 404
        r = await client.post("/workflows/no_such_flow", json={})
        assert r.status_code == 404
        assert "no_such_flow" in r.json()["error"] and "http_echo" in r.json()["error"]

        iid = (await client.post("/workflows/http_add", json={"input": [2]})).json()["instance_id"]
        await client.get(f"/instances/{iid}/result", params={"timeout": 20})
        r = await client.post(f"/instances/{iid}/cancel")
        assert r.status_code == 409 and "completed" in r.json()["error"]

        r = await client.get("/no/such/path")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        r = await client.get("/workflows/http_echo")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = await client.delete("/")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_bad_requests_store_nothing(backend: Backend) -> None:
    async with served(backend) as (app, client):
        cases: list[tuple[str, Any]] = [
            ("/workflows/http_add", b"{not json"),
            ("/workflows/http_add", b"[1, 2]"),
            ("/workflows/http_add", json.dumps({"input": ["x"]}).encode()),
            ("/workflows/http_add", json.dumps({"inputs": [1]}).encode()),
            ("/workflows/http_add", json.dumps({"input": [1], "instance_id": 5}).encode()),
            ("/workflows/http_echo", json.dumps({"input": 1, "instance_id": ""}).encode()),
        ]
        for path, body in cases:
            r = await client.post(path, content=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]
        for params in ({"timeout": "soon"}, {"timeout": "61"}, {"timeout": "-1"}):
            assert (await client.get("/instances/x/result", params=params)).status_code == 400
        assert await app.list_instances() == []


async def test_list_instances_with_filters(backend: Backend) -> None:
    async with served(backend) as (_, client):
        ids = [
            (await client.post("/workflows/http_add", json={"input": [n]})).json()["instance_id"]
            for n in range(3)
        ]
        for iid in ids:
            await client.get(f"/instances/{iid}/result", params={"timeout": 20})
        await client.post("/workflows/http_echo", json={"input": None})
        r = await client.get("/instances", params={"workflow": "http_add", "status": "completed"})
        assert r.status_code == 200
        assert sorted(i["instance_id"] for i in r.json()["instances"]) == sorted(ids)
        r = await client.get("/instances", params={"limit": 2})
        assert len(r.json()["instances"]) == 2
        for params in ({"status": "sleeping"}, {"limit": "x"}, {"limit": 5000}, {"color": "red"}):
            r = await client.get("/instances", params=params)
            assert r.status_code == 400, params


INVALID_EVENTS: list[tuple[str, dict[str, str], bytes]] = [
    ("bad JSON", CE_HEADERS, b'{"specversion": "1.0",'),
    ("missing id", CE_HEADERS, json.dumps({**EVENT, "id": None}).encode()),
    (
        "missing source",
        CE_HEADERS,
        json.dumps({k: v for k, v in EVENT.items() if k != "source"}).encode(),
    ),
    ("wrong specversion", CE_HEADERS, json.dumps({**EVENT, "specversion": "0.3"}).encode()),
    (
        "time without offset",
        CE_HEADERS,
        json.dumps({**EVENT, "time": "2024-01-01T00:00:00"}).encode(),
    ),
    ("bad extension name", CE_HEADERS, json.dumps({**EVENT, "Bad-Name": "x"}).encode()),
    ("control char", CE_HEADERS, json.dumps({**EVENT, "subject": "a\u0007b"}).encode()),
    ("binary: no id", {"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, b""),
    (
        "binary: NUL header",
        {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s%00", "ce-type": "t"},
        b"",
    ),
    (
        "binary: bad JSON data",
        {
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "/s",
            "ce-type": "t",
            "content-type": "application/json",
        },
        b"{oops",
    ),
    ("no event", {"content-type": "application/json"}, b"{}"),
]


@pytest.mark.parametrize("case", INVALID_EVENTS, ids=[c[0] for c in INVALID_EVENTS])
async def test_invalid_cloudevents_are_400_and_store_nothing(
    backend: Backend, case: tuple[str, dict[str, str], bytes]
) -> None:
    _, headers, body = case
    async with served(backend) as (app, client):
        r = await client.post("/", headers=headers, content=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]
        assert await app.list_instances() == []


async def test_unsupported_cloudevents_format_is_415(backend: Backend) -> None:
    async with served(backend) as (_, client):
        headers = {"content-type": "application/cloudevents+protobuf"}
        r = await client.post("/", headers=headers, content=b"\x0a\x01x")
        assert r.status_code == 415 and "batch" in r.json()["error"]


async def _chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


# When the server answers early and closes, httpx abandons its request-body async generator
# (a client-side leak that trio reports as ResourceWarning); the server side is what we test.
@pytest.mark.filterwarnings("ignore:Async generator 'httpx._content:ResourceWarning")
@pytest.mark.parametrize("path", ["/", "/workflows/http_echo", "/events"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversize_body_is_413_and_server_stays_healthy(
    backend: Backend, path: str, chunked: bool
) -> None:
    async with served(backend, max_body_bytes=1_048_576) as (app, client):
        body: Any = _chunks(2 * 1_048_576) if chunked else b"x" * (2 * 1_048_576)
        r = await client.post(path, content=body, headers=CE_HEADERS)
        assert r.status_code == 413, r.text
        assert "1048576" in r.json()["error"]
        assert (await client.get("/healthz")).status_code == 200
        ok = await client.post("/workflows/http_echo", json={"input": "x" * 1000})
        assert ok.status_code == 202
        assert len(await app.list_instances()) == 1


async def test_body_just_under_the_limit_is_read(backend: Backend) -> None:
    async with served(backend, max_body_bytes=4096) as (_, client):
        payload = json.dumps({"input": "y" * 3000}).encode()
        assert len(payload) < 4096
        r = await client.post("/workflows/http_echo", content=_one(payload))
        assert r.status_code == 202


async def _one(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 100):
        yield data[i : i + 100]


async def test_bearer_token(backend: Backend) -> None:
    async with served(backend, bearer_token="s3cret") as (_, client):
        r = await client.post("/workflows/http_echo", json={"input": 1})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        wrong = {"authorization": "Bearer nope"}
        assert (await client.get("/instances", headers=wrong)).status_code == 401
        assert (await client.post("/", headers=wrong, content=b"{}")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
        good = {"authorization": "bearer s3cret"}
        r = await client.post("/workflows/http_echo", json={"input": 1}, headers=good)
        assert r.status_code == 202
        assert (await client.get("/instances", headers=good)).status_code == 200


async def test_storage_unavailable_is_503_retryable_and_other_errors_are_500(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(backend) as (app, client):

        async def unavailable(instance_id: str) -> Any:
            raise StorageUnavailableError("database went away")

        monkeypatch.setattr(app, "status", unavailable)
        r = await client.get("/instances/x")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {"error": "database went away", "retryable": True}

        async def broken(instance_id: str) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(app, "status", broken)
        r = await client.get("/instances/x")
        assert r.status_code == 500  # hypercorn's own answer: the error was not swallowed
        assert (await client.get("/healthz")).status_code == 200


async def test_mounted_under_root_path(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        from romancy_trio.asgi import create_asgi_app

        inner = create_asgi_app(app)

        async def router(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = {**scope, "root_path": "/api"}
            await inner(scope, receive, send)

        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_asgi, router))
            async with client_for(port) as client:
                r = await client.post("/api/workflows/http_echo", json={"input": 2})
                assert r.status_code == 202
                assert r.headers["location"].startswith("/api/instances/")
                r = await client.get(r.headers["location"] + "/result")
                assert r.json()["result"] == {"echo": 2}
            nursery.cancel_scope.cancel()


async def test_graceful_shutdown_event(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app, shutdown=stop))
            async with client_for(port) as client:
                assert (await client.get("/healthz")).status_code == 200
            stop.set()
        # the nursery exited on its own: serve_http returned after the graceful stop
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
