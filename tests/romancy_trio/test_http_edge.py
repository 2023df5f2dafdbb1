"""The HTTP edge against raw requests on a real hypercorn server: NUL in paths and queries,
quoted-string CloudEvents headers, abandoned long polls, slow and aborted bodies, and JSON
integers that do not fit 64 bits."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from romancy_trio import WorkflowContext, open_app, wait_event, workflow
from romancy_trio.asgi import HttpTimeouts, create_asgi_app, serve_asgi
from romancy_trio.asgi._cloudevents import BadEvent, decode_json, parse_http, unquote_header
from romancy_trio.asgi._serve import server_config

from ._raw_http import raw_request, read_response, request_bytes
from .conftest import Backend, fetch
from .test_http import WORKFLOWS, served


@workflow
async def edge_waits(ctx: WorkflowContext, name: str) -> Any:
    event = await wait_event(ctx, "edge.go", timeout=600)
    return {"name": name, "subject": event.subject, "data": event.data}


EDGE_WORKFLOWS = [*WORKFLOWS, edge_waits]


async def until(condition: Callable[[], Awaitable[bool] | bool], *, limit: float = 30) -> None:
    """Poll ``condition`` until true (a generous deadline: the machine is loaded)."""
    with trio.fail_after(limit):
        while True:
            value = condition()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            await trio.sleep(0.02)


# -- NUL in paths and queries ----------------------------------------------------------------

NUL_REQUESTS = [
    ("GET", "/instances/%00"),
    ("GET", "/instances/a%00b"),
    ("POST", "/instances/%00/cancel"),
    ("GET", "/instances?workflow=a%00b"),
    ("GET", "/instances?status=%00"),
    ("GET", "/instances?lim%00it=1"),
    ("GET", "/instances/%00/result?timeout=0"),
    ("GET", "/instances/x/result?timeout=0%00"),
    ("POST", "/workflows/%00"),
    ("POST", "/workflows/http_echo%00"),
]


async def test_nul_in_a_path_or_query_is_a_clear_400_and_touches_nothing(
    backend: Backend,
) -> None:
    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        port = client.base_url.port
        assert port is not None
        for method, target in NUL_REQUESTS:
            body = b'{"input": "x"}' if method == "POST" else b""
            r = await raw_request(port, method, target, [("content-type", "application/json")],
                                  body)
            assert r.status == 400, (target, r)
            assert "U+0000" in r.json()["error"], (target, r.json())
        assert await app.list_instances() == []
        r = await client.get("/instances", params={"workflow": "ok"})  # and the server is fine
        assert r.status_code == 200 and r.json() == {"instances": []}


# -- quoted-string header values (HTTP binding 3.1.3.2) ----------------------------------------


def test_quoted_string_header_values_are_unquoted_then_percent_decoded() -> None:
    assert unquote_header("ce-id", '"q \\"x\\" %C3%A9"') == 'q "x" %C3%A9'
    assert unquote_header("ce-id", '"hello world"') == "hello world"
    assert unquote_header("ce-id", '"a\\\\b"') == "a\\b"
    assert unquote_header("ce-id", 'plain "inner"') == 'plain "inner"'
    assert unquote_header("ce-id", '"') == '"'
    with pytest.raises(BadEvent, match="unescaped"):
        unquote_header("ce-id", '"a"b"')
    with pytest.raises(BadEvent, match="lone backslash"):
        unquote_header("ce-id", '"a\\"')
    headers = [(b"ce-specversion", b'"1.0"'), (b"ce-id", b'"q \\"x\\" %C3%A9"'),
               (b"ce-source", b"/s"), (b"ce-type", b"t"), (b"ce-subject", b'"hello world"')]
    event = parse_http(headers, b"")
    assert event.id == 'q "x" \u00e9' and event.subject == "hello world"


async def test_quoted_binary_event_is_the_same_event_as_its_structured_twin(
    backend: Backend,
) -> None:
    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        port = client.base_url.port
        assert port is not None
        iid = await app.start(edge_waits, "q")
        headers = [("ce-specversion", "1.0"), ("ce-id", '"q \\"x\\" %C3%A9 1"'),
                   ("ce-source", '"/curl"'), ("ce-type", "edge.go"),
                   ("ce-subject", '"hello world"'), ("ce-romancyinstanceid", iid),
                   ("content-type", "application/json")]
        r = await raw_request(port, "POST", "/", headers, b'{"n": 1}')
        assert r.status == 202, r
        assert r.json()["id"] == 'q "x" \u00e9 1' and r.json()["source"] == "/curl"
        assert await app.result(iid, timeout=30) == {
            "name": "q", "subject": "hello world", "data": {"n": 1}}
        twin = {"specversion": "1.0", "id": 'q "x" \u00e9 1', "source": "/curl",
                "type": "edge.go", "data": {"n": 1}}
        r2 = await client.post("/", content=json.dumps(twin),
                               headers={"content-type": "application/cloudevents+json"})
        assert r2.status_code == 202 and r2.json()["duplicate"] is True
        rows = await fetch(app, "SELECT source, event_id FROM workflow_events")
        assert [tuple(row) for row in rows] == [("/curl", 'q "x" \u00e9 1')]
        bad = [*headers[:1], ("ce-id", '"a"b"'), *headers[2:4]]
        r3 = await raw_request(port, "POST", "/", bad, b"")
        assert r3.status == 400 and "ce-id" in r3.json()["error"]


# -- long polls released when the client hangs up ----------------------------------------------


async def test_abandoned_long_polls_release_their_watches_at_once(backend: Backend) -> None:
    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        port = client.base_url.port
        assert port is not None
        iid = await app.start(edge_waits, "poll")
        await until(lambda: _status_is(app, iid, "waiting"))
        base = app.hub.statistics().watches
        polls = 100
        streams = []
        for _ in range(polls):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request_bytes("GET", f"/instances/{iid}/result?timeout=60"))
            streams.append(stream)
        await until(lambda: app.hub.statistics().watches >= base + polls)
        for stream in streams:
            await stream.aclose()
        # released on the disconnect, long before the polls' own 60 s
        await until(lambda: app.hub.statistics().watches <= base, limit=20)
        r = await client.get(f"/instances/{iid}/result", params={"timeout": 0})
        assert r.status_code == 408  # a poll that stays still gets its answer


async def _status_is(app: Any, iid: str, status: str) -> bool:
    return str((await app.status(iid)).status) == status


# -- timeouts --------------------------------------------------------------------------------


def test_server_config_sets_the_documented_timeouts() -> None:
    config = server_config("127.0.0.1:0")
    assert (config.keep_alive_timeout, config.read_timeout, config.websocket_ping_interval) == (
        5.0, 90.0, 20.0)
    custom = server_config("127.0.0.1:0", HttpTimeouts(keep_alive=1, read=9, websocket_ping=3))
    assert (custom.keep_alive_timeout, custom.read_timeout, custom.websocket_ping_interval) == (
        1, 9, 3)
    with pytest.raises(ValueError, match="websocket_ping"):
        HttpTimeouts(read=5, websocket_ping=5)
    with pytest.raises(ValueError, match="body"):
        HttpTimeouts(body=0)


async def test_a_stalled_or_dripping_body_is_answered_408_and_closed(backend: Backend) -> None:
    timeouts = HttpTimeouts(body=1.0)
    async with served(backend, timeouts=timeouts) as (_app, client):
        port = client.base_url.port
        assert port is not None
        head = (b"POST /workflows/http_echo HTTP/1.1\r\nhost: x\r\n"
                b"content-type: application/json\r\ncontent-length: 100\r\n\r\n")
        stalled = await trio.open_tcp_stream("127.0.0.1", port)
        async with stalled:
            await stalled.send_all(head + b'{"input":')
            r = await read_response(stalled)
            assert r.status == 408 and "1 s" in r.json()["error"]
            assert r.headers["connection"] == "close"
            with trio.fail_after(10):
                assert await stalled.receive_some(100) == b""  # the server closed it

        dripping = await trio.open_tcp_stream("127.0.0.1", port)
        async with dripping:
            await dripping.send_all(head)

            async def drip() -> None:
                for _ in range(100):
                    await dripping.send_all(b" ")
                    await trio.sleep(0.1)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                r = await read_response(dripping)
                nursery.cancel_scope.cancel()
            assert r.status == 408
        assert await _app.list_instances() == []


async def test_a_silent_connection_is_closed_after_the_read_timeout(backend: Backend) -> None:
    timeouts = HttpTimeouts(read=1.0, websocket_ping=0.5, body=60)
    async with served(backend, timeouts=timeouts) as (_app, client):
        port = client.base_url.port
        assert port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n")
            with trio.fail_after(20):
                while await stream.receive_some(100):
                    pass  # hypercorn closes it (no answer: the request never completed)


# -- a client hanging up while the server answers early (hypercorn's send race) -----------------


async def test_clients_hanging_up_mid_body_raise_nothing_in_the_app(tmp_path: Any) -> None:
    """hypercorn 0.18 closes the socket (send_eof outside its send lock) when a client hangs
    up mid-body; our early 413 then found the stream busy (trio.BusyResourceError). And an
    early answer must not leave the request's task behind (blocked on its own queue)."""
    errors: list[BaseException] = []
    running = [0]
    async with open_app(f"sqlite:///{tmp_path / 'e.db'}") as app:
        inner = create_asgi_app(app)

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            running[0] += 1
            try:
                await inner(scope, receive, send)
            except Exception as exc:
                errors.append(exc)
                raise
            finally:
                running[0] -= 1

        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_asgi, recording))
            rng = random.Random(23)
            for _ in range(8):
                async with trio.open_nursery() as clients:
                    for n in range(25):
                        clients.start_soon(_huge_body_client, port, rng.randrange(6), n)
            await until(lambda: running[0] == 0)
            nursery.cancel_scope.cancel()
    assert errors == []


async def _huge_body_client(port: int, mode: int, n: int) -> None:
    expect = b"expect: 100-continue\r\n" if mode % 2 else b""
    head = (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/cloudevents+json\r\n"
            b"content-length: 10000000000\r\n" + expect + b"\r\n")
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        try:
            await stream.send_all(head)
            await stream.send_all(b"x" * (10, 1000, 65536, 300_000)[n % 4])
            if mode < 4:
                return  # hang up mid-body
            r = await read_response(stream)
            assert r.status == 413
        except (trio.BrokenResourceError, ConnectionError):
            pass


# -- integers beyond 64 bits -----------------------------------------------------------------


def test_integers_beyond_64_bits_are_refused_never_rounded() -> None:
    assert decode_json(b"[-9223372036854775808, 18446744073709551615, 1.5]", "x") == [
        -(2**63), 2**64 - 1, 1.5]
    for literal in ("-9223372036854775809", "18446744073709551616", "1" + "0" * 30):
        with pytest.raises(BadEvent, match="outside the range kept exactly"):
            decode_json(f'{{"a": [{literal}, 1.5]}}'.encode(), "event data")
    with pytest.raises(BadEvent, match="not valid JSON"):  # orjson: beyond a double's range
        decode_json(("9" * 5000).encode(), "event data")


async def test_big_integers_over_http_get_a_400_and_nothing_is_stored(backend: Backend) -> None:
    async with served(backend) as (app, client):
        port = client.base_url.port
        assert port is not None
        big = str(-(2**63) - 1)
        event = ('{"specversion": "1.0", "id": "big", "source": "/b", "type": "t", '
                 f'"data": {{"n": {big}}}}}')
        r = await raw_request(port, "POST", "/", [("content-type", "application/cloudevents+json")],
                              event.encode())
        assert r.status == 400 and big in r.json()["error"]
        r = await raw_request(port, "POST", "/workflows/http_echo",
                              [("content-type", "application/json")],
                              f'{{"input": {big}}}'.encode())
        assert r.status == 400 and big in r.json()["error"]
        assert await fetch(app, "SELECT event_id FROM workflow_events") == []
        assert await app.list_instances() == []
        edge = str(2**64 - 1)
        r = await raw_request(port, "POST", "/workflows/http_echo",
                              [("content-type", "application/json")],
                              f'{{"input": {edge}}}'.encode())
        assert r.status == 202, r
        iid = r.json()["instance_id"]
        result = await client.get(f"/instances/{iid}/result", params={"timeout": 30})
        assert f'"echo":{edge}' in result.text.replace(" ", "")



# -- the cloudevents SDK's own encoders ------------------------------------------------------


async def test_the_sdk_encodings_of_one_event_are_one_stored_event(backend: Backend) -> None:
    from cloudevents.core.bindings.http import to_binary, to_structured
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    async with served(backend, workflows=EDGE_WORKFLOWS) as (app, client):
        iid = await app.start(edge_waits, "sdk")
        await until(lambda: _status_is(app, iid, "waiting"))
        event = CloudEvent({
            "type": "edge.go", "source": "/sdk/ü space", "id": 'sdk "1" 50% é',
            "subject": "hello world", "datacontenttype": "application/json",
            "romancyinstanceid": iid}, {"big": 2**64 - 1, "nul": "a\u0000b"})
        binary = to_binary(event, JSONFormat())
        r = await client.post("/", headers=binary.headers, content=binary.body)
        assert r.status_code == 202 and r.json()["duplicate"] is False, r.text
        assert r.json()["id"] == 'sdk "1" 50% é' and r.json()["source"] == "/sdk/ü space"
        structured = to_structured(event, JSONFormat())
        r = await client.post("/", headers=structured.headers, content=structured.body)
        assert r.status_code == 202 and r.json()["duplicate"] is True, r.text
        assert await app.result(iid, timeout=30) == {
            "name": "sdk", "subject": "hello world",
            "data": {"big": 2**64 - 1, "nul": "a\u0000b"}}


# -- an idle websocket feed outlives the read timeout (the server pings) ----------------------


async def test_an_idle_feed_survives_the_read_timeout(backend: Backend) -> None:
    from .test_ws_auth import ws_connect

    timeouts = HttpTimeouts(read=1.5, websocket_ping=0.2)
    async with served(backend, timeouts=timeouts) as (app, client):
        port = client.base_url.port
        assert port is not None
        async with ws_connect(port, "channel=idle") as ws:
            assert json.loads(await ws.get_message()) == {"subscribed": {"idle": 0}}
            await trio.sleep(4)  # the state under test: a silent client, past `read` twice
            await app.publish("idle", "still here")
            with trio.fail_after(30):
                assert json.loads(await ws.get_message())["data"] == "still here"
