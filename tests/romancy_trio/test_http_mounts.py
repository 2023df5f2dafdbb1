"""Mount points of the ASGI app: other ASGI apps served beside the routes, behind the token."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from romancy_trio import open_app
from romancy_trio.asgi import create_asgi_app, serve_asgi

from ._raw_http import read_response


class Echo:
    """An ASGI app that answers with the scope's path and root_path."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"app": self.name, "path": scope["path"],
                           "root_path": scope["root_path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def test_mounted_apps_get_their_prefix_behind_the_token(tmp_path: Path) -> None:
    async with open_app(f"sqlite:///{tmp_path / 'm.db'}", workflows=[],
                        run_workers=False) as app:
        asgi = create_asgi_app(app, bearer_token="tok",
                               mounts={"/tools": Echo("tools"), "/tools/deep": Echo("deep")})
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_asgi, asgi))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         trust_env=False) as client:
                auth = {"authorization": "Bearer tok"}
                r = await client.get("/tools/x?q=1", headers=auth)
                assert r.json() == {"app": "tools", "path": "/tools/x", "root_path": "/tools"}
                r = await client.post("/tools", headers=auth)
                assert r.json()["app"] == "tools"
                r = await client.get("/tools/deep/y", headers=auth)  # the longest prefix wins
                assert r.json() == {"app": "deep", "path": "/tools/deep/y",
                                    "root_path": "/tools/deep"}
                for headers in ({}, {"authorization": "Bearer nope"}):
                    refused = await client.get("/tools/x", headers=headers)
                    assert refused.status_code == 401
                    assert refused.headers["www-authenticate"] == "Bearer"
                not_mounted = await client.get("/toolsx", headers=auth)  # not under /tools
                assert not_mounted.status_code == 404
                assert (await client.get("/healthz")).status_code == 200  # routes as before
            nursery.cancel_scope.cancel()


async def test_a_refusal_sent_before_the_body_arrived_says_the_connection_closes(
        tmp_path: Path) -> None:
    """The server hangs up after answering a request whose body it did not read (the rest
    could still come); the answer says so, or a keep-alive client would send its next request
    on the closing connection and get no answer (seen in CI: an httpx client's second POST
    after a 401)."""
    async with open_app(f"sqlite:///{tmp_path / 'm.db'}", workflows=[],
                        run_workers=False) as app:
        asgi = create_asgi_app(app, bearer_token="tok", mounts={"/tools": Echo("tools")})
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_asgi, asgi))
            for target, auth, status in (("/tools/x", "", 401), ("/instances", "", 401),
                                         ("/tools/x", "authorization: Bearer tok\r\n", 200)):
                # refused by a mount or a route, or answered by a mounted app that reads no body
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(f"POST {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                                          f"{auth}content-length: 20\r\n\r\n".encode())
                    answer = await read_response(stream)  # the body never comes
                    assert answer.status == status
                    assert answer.headers["connection"] == "close"
                    with trio.fail_after(30):  # and it hangs up (after the rest of a body)
                        while await stream.receive_some(65536):
                            pass
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:  # a refusal of a request without a body keeps the connection
                for _ in range(2):
                    await stream.send_all(b"GET /tools/x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                    refused = await read_response(stream)
                    assert refused.status == 401 and "connection" not in refused.headers
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("prefix", ["tools", "/tools/", "/t?x", ""])
async def test_bad_mount_prefixes_are_refused(prefix: str, tmp_path: Path) -> None:
    async with open_app(f"sqlite:///{tmp_path / 'm.db'}", workflows=[],
                        run_workers=False) as app:
        with pytest.raises(ValueError, match="mount prefix"):
            create_asgi_app(app, mounts={prefix: Echo("x")})
