"""A real headless Chromium (Debian's ``chromium``, driven by Playwright; no downloaded browser)
opens the bearer-protected channel feed from a page served on 127.0.0.1 and receives messages;
the same page from a disallowed origin, and a page without a ticket, are refused.

The page's own backend holds the bearer token and fetches a ticket for it (``GET /ticket`` on
the page server calls ``POST /channels/ws/ticket``): the browser never sees the token.
``.ci/browser-test-deps`` installs chromium and the driver (the nox ``tests`` session runs it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from romancy_trio import open_app
from romancy_trio.asgi import serve_asgi, serve_http
from romancy_trio.asgi._http import serve_lifespan
from romancy_trio.asgi._websocket import DEFAULT_FEED

TOKEN = "browser-s3cret"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PAGE = """<!doctype html><meta charset="utf-8"><title>feed</title><script>
window.received = []; window.closeCode = null; window.opened = false; window.protocol = null;
(async () => {
  const offer = %(ticket)s ? (await (await fetch("/ticket")).json()).subprotocols : [];
  const ws = new WebSocket("ws://127.0.0.1:%(port)d/channels/ws?channel=news", offer);
  ws.onopen = () => { window.opened = true; window.protocol = ws.protocol; };
  ws.onmessage = (e) => window.received.push(JSON.parse(e.data));
  ws.onclose = (e) => { window.closeCode = e.code; };
})();
</script>"""


def chromium_or_skip() -> str:
    """The chromium executable, with the Playwright driver importable; skip locally, fail
    loudly in CI (where ``.ci/browser-test-deps`` must have installed both)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    missing = [] if os.access(path, os.X_OK) else ["Debian's chromium"]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        message = f"{' and '.join(missing)} missing: run .ci/browser-test-deps"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def page_server(romancy_port: list[int]) -> Any:
    """A tiny site: ``/`` (with a ticket) and ``/bare`` (without) pages; ``/ticket`` asks the
    romancy server for a ticket with the bearer token, server to server."""

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["path"] == "/ticket":
            async with httpx.AsyncClient(trust_env=False) as http:
                r = await http.post(f"http://127.0.0.1:{romancy_port[0]}/channels/ws/ticket",
                                    headers={"authorization": f"Bearer {TOKEN}"})
            body, kind = r.content, b"application/json"
        else:
            with_ticket = "true" if scope["path"] == "/" else "false"
            body = (PAGE % {"ticket": with_ticket, "port": romancy_port[0]}).encode()
            kind = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": body})

    return site


def drive_browser(chromium: str, allowed: str, other: str, publish: Callable[[], None]
                  ) -> dict[str, Any]:
    """In a worker thread: the three pages, in one fresh browser profile."""
    from playwright.sync_api import sync_playwright

    state = "({opened: window.opened, closed: window.closeCode, protocol: window.protocol," \
            " received: window.received})"
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{allowed}/")
            page.wait_for_function("window.received.length >= 1", timeout=60_000)
            publish()  # three messages, published while the page watches
            page.wait_for_function("window.received.length >= 4", timeout=60_000)
            out["allowed"] = page.evaluate(state)
            for name, url in (("other_origin", f"{other}/"), ("no_ticket", f"{allowed}/bare")):
                refused = browser.new_page()
                refused.goto(url)
                refused.wait_for_function("window.closeCode !== null", timeout=60_000)
                out[name] = refused.evaluate(state)
        finally:
            browser.close()
    return out


async def test_chromium_page_reads_the_protected_feed_and_other_origins_are_refused(
    tmp_path: Any,
) -> None:
    chromium = chromium_or_skip()
    romancy_port = [0]
    async with open_app(f"sqlite:///{tmp_path / 'browser.db'}") as app:
        async with trio.open_nursery() as nursery:
            allowed_port = await nursery.start(partial(serve_asgi, page_server(romancy_port)))
            other_port = await nursery.start(partial(serve_asgi, page_server(romancy_port)))
            allowed = f"http://127.0.0.1:{allowed_port}"
            romancy_port[0] = await nursery.start(partial(
                serve_http, app, bearer_token=TOKEN, allowed_origins=[allowed]))
            before = DEFAULT_FEED.statistics().connections_total
            token = trio.lowlevel.current_trio_token()

            def publish() -> None:
                async def three() -> None:
                    for n in range(3):
                        await app.publish("news", {"n": n})

                trio.from_thread.run(three, trio_token=token)

            seen = await trio.to_thread.run_sync(
                drive_browser, chromium, allowed, f"http://127.0.0.1:{other_port}", publish)
            nursery.cancel_scope.cancel()
    page = seen["allowed"]
    assert page["opened"] is True and page["protocol"] == "romancy.feed", page
    assert page["received"][0] == {"subscribed": {"news": 0}}
    assert [m["data"] for m in page["received"][1:]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    for refused in ("other_origin", "no_ticket"):
        result = seen[refused]
        assert result["opened"] is False and result["received"] == [], (refused, result)
        assert result["closed"] == 1006, (refused, result)  # the handshake got HTTP 403
    # only the allowed page's connection reached the feed
    assert DEFAULT_FEED.statistics().connections_total == before + 1, json.dumps(seen)
