"""The websocket feed's browser credential (a ticket offered as a subprotocol) and its Origin
allow-list: the guard sans-IO, then a real hypercorn server and a real websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, wrap_client_stream

from romancy_trio import open_app
from romancy_trio.asgi import serve_http
from romancy_trio.asgi._ws_auth import FEED_PROTOCOL, TICKET_PREFIX, WebSocketGuard

from .conftest import Backend

TOKEN = "s3cret"


def scope(headers: dict[str, str], subprotocols: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    if subprotocols is not None:
        out["subprotocols"] = subprotocols
    return out


def test_tickets_are_signed_expire_and_belong_to_their_token() -> None:
    now = [1000.0]
    guard = WebSocketGuard(b"tok", ticket_ttl=30, clock=lambda: now[0])
    ticket = guard.issue()
    assert guard.ticket_valid(ticket)
    assert guard.has_ticket(scope({}, ["romancy.feed", TICKET_PREFIX + ticket]))
    assert not guard.has_ticket(scope({}, ["romancy.feed"]))
    same_token = WebSocketGuard(b"tok", clock=lambda: now[0])  # another process, same token
    assert same_token.ticket_valid(ticket)
    assert not WebSocketGuard(b"other", clock=lambda: now[0]).ticket_valid(ticket)
    version, expiry, nonce, signature = ticket.split(".")
    assert not guard.ticket_valid(f"{version}.{int(expiry) + 999}.{nonce}.{signature}")
    assert not guard.ticket_valid(f"{version}.{expiry}.{nonce}.{signature[:-1]}x")
    for junk in ("", "v1", "v1.x.y.z", "v2.1.2.3", "v1.1.2.\u00e9"):
        assert not guard.ticket_valid(junk)
    now[0] += 31
    assert not guard.ticket_valid(ticket)
    with pytest.raises(ValueError, match="ticket_ttl"):
        WebSocketGuard(b"t", ticket_ttl=0)


def test_origin_rules() -> None:
    default = WebSocketGuard(b"t")
    assert default.origin_allowed(scope({"host": "127.0.0.1:8000"}))  # no Origin: not a browser
    assert default.origin_allowed(scope({"host": "127.0.0.1:8000",
                                         "origin": "http://127.0.0.1:8000"}))
    assert not default.origin_allowed(scope({"host": "127.0.0.1:8000",
                                             "origin": "http://127.0.0.1:9000"}))
    assert not default.origin_allowed(scope({"host": "api.example", "origin": "null"}))
    listed = WebSocketGuard(b"t", allowed_origins=["https://App.example.com/"])
    assert listed.origin_allowed(scope({"host": "api", "origin": "https://app.example.com"}))
    assert not listed.origin_allowed(scope({"host": "api", "origin": "http://app.example.com"}))
    assert WebSocketGuard(b"t", allowed_origins=["*"]).origin_allowed(
        scope({"host": "api", "origin": "https://anything.example"}))
    for bad in (["app.example.com"], ["https://a.example/path"], "https://a.example"):
        with pytest.raises(ValueError, match="origin"):
            WebSocketGuard(b"t", allowed_origins=bad)  # type: ignore[arg-type]


# -- over a real server ---------------------------------------------------------------------


@asynccontextmanager
async def ws_connect(
    port: int, query: str, *, subprotocols: list[str] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[WebSocketConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(10):
            ws = await wrap_client_stream(
                nursery, stream, f"127.0.0.1:{port}", f"/channels/ws?{query}",
                subprotocols=subprotocols, extra_headers=headers or [])
        yield ws
        await ws.aclose()
        nursery.cancel_scope.cancel()


async def rejected(port: int, **kwargs: Any) -> int:
    """The HTTP status that refused the handshake (0: it was accepted)."""
    status = 0
    try:
        async with ws_connect(port, "channel=news", **kwargs):
            pass
    except* ConnectionRejected as group:
        status = next(e.status_code for e in group.exceptions if isinstance(e, ConnectionRejected))
    return status


async def test_a_ticket_from_an_authenticated_call_opens_the_protected_feed(
    backend: Backend,
) -> None:
    async with open_app(backend.url, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(
                serve_http, app, bearer_token=TOKEN, allowed_origins=["http://pages.test:81"]))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         trust_env=False) as http:
                assert (await http.post("/channels/ws/ticket")).status_code == 401
                r = await http.post("/channels/ws/ticket",
                                    headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
            issued = r.json()
            assert issued["expires_in"] == 60
            offer = issued["subprotocols"]
            assert offer == [FEED_PROTOCOL, TICKET_PREFIX + issued["ticket"]]

            assert await rejected(port) == 403  # no credential
            assert await rejected(port, subprotocols=[FEED_PROTOCOL, TICKET_PREFIX + "v1.1.a.b"]
                                  ) == 403
            origin = [(b"origin", b"http://pages.test:81")]
            async with ws_connect(port, "channel=news", subprotocols=offer, headers=origin) as ws:
                assert ws.subprotocol == FEED_PROTOCOL
                assert json.loads(await ws.get_message()) == {"subscribed": {"news": 0}}
                await app.publish("news", {"n": 1})
                with trio.fail_after(30):
                    frame = json.loads(await ws.get_message())
                assert frame["data"] == {"n": 1} and frame["channel"] == "news"

            # a page of another site: refused even with a valid ticket, or the bearer token
            evil = [(b"origin", b"http://evil.test")]
            assert await rejected(port, subprotocols=offer, headers=evil) == 403
            bearer = [(b"authorization", f"Bearer {TOKEN}".encode())]
            assert await rejected(port, headers=[*bearer, *evil]) == 403
            same_site = [(b"origin", f"http://127.0.0.1:{port}".encode())]
            async with ws_connect(port, "channel=news", headers=[*bearer, *same_site]) as ws:
                assert ws.subprotocol is None
                assert json.loads(await ws.get_message()) == {"subscribed": {"news": 1}}
            nursery.cancel_scope.cancel()


async def test_nul_in_a_feed_query_is_a_policy_violation(backend: Backend) -> None:
    from trio_websocket import ConnectionClosed

    async with open_app(backend.url, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app))
            for query in ("channel=a%00b", "channel=a&after.a%00=1"):
                async with ws_connect(port, query) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.get_message()
                    assert info.value.reason.code == 1008
                    assert "U+0000" in (info.value.reason.reason or "")
            nursery.cancel_scope.cancel()


def test_allowed_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from romancy_trio.asgi import app_from_env

    monkeypatch.setenv("ROMANCY_TRIO_URL", "sqlite:///unused.db")
    monkeypatch.setenv("ROMANCY_TRIO_ALLOWED_ORIGINS", "https://a.example, https://b.example:8443")
    assert app_from_env().allowed_origins == ["https://a.example", "https://b.example:8443"]
    monkeypatch.delenv("ROMANCY_TRIO_ALLOWED_ORIGINS")
    assert app_from_env().allowed_origins is None
