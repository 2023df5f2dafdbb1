"""The web viewer in a real headless Chromium (Debian's ``chromium`` driven by Playwright, as in
``test_ws_chromium.py``), against hypercorn on 127.0.0.1 with a bearer token: the browser signs in
at ``/login`` (session cookie), the list shows a started instance, a status change appears
without a reload (Server-Sent Events), the instance page draws its timeline once it completes,
its Cancel button cancels a waiting instance, and its Resume button retries a failed one.
Screenshots go to ``tmp_path`` and, when
``ROMANCY_TRIO_SCREENSHOTS`` names a directory, there too (the docs' are made so:
``ROMANCY_TRIO_SCREENSHOTS=docs/images``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

import romancy_trio as rt
from romancy_trio.asgi import serve_http
from romancy_trio.viewer import viewer_app

from .test_ws_chromium import CHROMIUM_FLAGS, chromium_or_skip

TOKEN = "viewer-s3cret"
WAIT_MS = 90_000
_tries: dict[str, int] = {}


@rt.activity
async def viewer_reserve(ctx: rt.ActivityContext, order_id: str) -> str:
    return f"R-{order_id}"


@rt.activity(retry=rt.RetryPolicy(max_attempts=4, initial_interval=0.05))
async def viewer_charge(ctx: rt.ActivityContext, order_id: str) -> int:
    _tries[order_id] = _tries.get(order_id, 0) + 1
    if _tries[order_id] < 3:
        raise ConnectionError(f"card gateway busy (try {_tries[order_id]})")
    return 42


@rt.workflow
async def viewer_order(ctx: rt.WorkflowContext, order_id: str) -> dict[str, Any]:
    reservation = await viewer_reserve(ctx, order_id)
    await rt.sleep(ctx, 0.3)
    charged = await viewer_charge(ctx, order_id)
    await rt.subscribe(ctx, "viewer-news")
    news = await rt.receive(ctx, "viewer-news")
    approval = await rt.wait_event(ctx, "viewer.approved")
    return {"reservation": reservation, "charged": charged, "news": news.data,
            "approved_by": approval.data}


_gateway_up = [False]


@rt.activity(retry=rt.RetryPolicy.no_retries())
async def viewer_fragile_charge(ctx: rt.ActivityContext, order_id: str) -> str:
    if not _gateway_up[0]:
        raise ConnectionError("card gateway down")
    return f"charged {order_id}"


@rt.workflow
async def viewer_fragile(ctx: rt.WorkflowContext, order_id: str) -> str:
    await viewer_reserve(ctx, order_id)
    return await viewer_fragile_charge(ctx, order_id)


@rt.workflow
async def viewer_hold(ctx: rt.WorkflowContext, order_id: str) -> None:
    await rt.subscribe(ctx, "viewer-orders", "competing")
    await rt.wait_event(ctx, "viewer.never")


def drive(chromium: str, base: str, shots: list[Path], call: Callable[..., Any]) -> dict[str, Any]:
    """In a worker thread: sign in, then the list, live change, instance page, cancel."""
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}

    def shot(page: Any, name: str) -> None:
        for folder in shots:
            page.screenshot(path=str(folder / f"viewer-{name}.png"), full_page=True)

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 700})
        try:
            page = browser.new_page()
            page.goto(f"{base}/ui/")
            out["login_url"] = page.url  # redirected: no cookie yet
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector('#instances tr[data-id="order-1"]', timeout=WAIT_MS)
            out["after_login_url"] = page.url
            out["listed"] = page.inner_text('#instances tr[data-id="order-1"]')
            page.evaluate("window.notReloaded = true")
            page.wait_for_selector('#live.on', timeout=WAIT_MS)
            call("finish")  # message + event: order-1 completes while the page watches
            page.wait_for_selector('#instances tr[data-id="order-1"] .status.completed',
                                   timeout=WAIT_MS)
            out["live_no_reload"] = page.evaluate("window.notReloaded === true")
            shot(page, "list")

            page.click('a[href="#/i/order-1"]')
            page.wait_for_selector("#timeline rect.bar", timeout=WAIT_MS)
            out["bars"] = page.locator("#timeline rect.bar").count()
            out["attempts"] = page.locator("#timeline rect.attempt").count()
            out["gaps"] = page.locator("#timeline line.gap").count()
            out["marks"] = page.evaluate(
                "[...document.querySelectorAll('#timeline path.mark')].map(p => p.classList[1])")
            out["result"] = page.inner_text("#result")
            shot(page, "instance")

            page.goto(f"{base}/ui/#/i/hold-1")
            page.wait_for_selector("#cancel:not([disabled])", timeout=WAIT_MS)
            page.click("#cancel")
            page.wait_for_selector("h2 .status.cancelled", timeout=WAIT_MS)
            out["cancel_button_after"] = page.is_disabled("#cancel")

            page.goto(f"{base}/ui/#/i/fragile-1")
            page.wait_for_selector("#resume:not([disabled])", timeout=WAIT_MS)
            out["error_shown"] = page.inner_text("#error")
            shot(page, "failed")
            call("fix")  # the gateway is back: resume from the page
            page.click("#resume")
            page.wait_for_selector("h2 .status.completed", timeout=WAIT_MS)
            out["resumed_result"] = page.inner_text("#result")

            page.goto(f"{base}/ui/#/channels")
            page.wait_for_selector("#channels", timeout=WAIT_MS)
            out["channels"] = page.inner_text("#channels")
            shot(page, "channels")

            bare = browser.new_page()  # the API under /ui without the cookie: refused
            out["no_cookie_status"] = pw.request.new_context().get(
                f"{base}/ui/api/instances").status
            bare.close()
        finally:
            browser.close()
    return out


async def test_viewer_in_chromium_list_live_timeline_cancel(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    shots = [tmp_path]
    if os.environ.get("ROMANCY_TRIO_SCREENSHOTS"):
        shots.append(Path(os.environ["ROMANCY_TRIO_SCREENSHOTS"]))
    async with rt.open_app(f"sqlite:///{tmp_path / 'viewer.db'}",
                           workflows=[viewer_order, viewer_hold, viewer_reserve,
                                      viewer_charge, viewer_fragile,
                                      viewer_fragile_charge]) as app:
        await app.start(viewer_fragile, "3", instance_id="fragile-1")
        with trio.fail_after(WAIT_MS / 1000):
            while (await app.status("fragile-1")).status is not rt.WorkflowStatus.FAILED:
                await trio.sleep(0.05)
        await app.start(viewer_order, "1", instance_id="order-1")
        await app.start(viewer_hold, "2", instance_id="hold-1")
        await app.publish("viewer-orders", {"order": 7})
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(
                serve_http, app, bearer_token=TOKEN,
                mounts={"/ui": viewer_app(app, stream_interval=0.2)}))
            token = trio.lowlevel.current_trio_token()

            async def finish() -> None:
                with trio.fail_after(WAIT_MS / 1000):  # it subscribed: the message reaches it
                    while "viewer-news" not in await app.subscribers():
                        await trio.sleep(0.05)
                await app.publish("viewer-news", "spring sale")
                await app.send_event(rt.Event(type="viewer.approved", source="test",
                                              id="a-1", data="ops",
                                              target_instance_id="order-1"))

            def call(name: str) -> None:
                if name == "fix":
                    _gateway_up[0] = True
                    return
                assert name == "finish"
                trio.from_thread.run(finish, trio_token=token)

            seen = await trio.to_thread.run_sync(
                drive, chromium, f"http://127.0.0.1:{port}", shots, call)
            hold = await app.status("hold-1")
            nursery.cancel_scope.cancel()
    assert "/login?next=" in seen["login_url"], seen
    assert seen["after_login_url"].endswith("/ui/"), seen
    assert "viewer_order" in seen["listed"], seen
    assert seen["live_no_reload"] is True
    # reserve, charge (with its two failed attempts), subscribe (a built-in activity); the
    # sleep a gap; the message and the event marks
    assert seen["bars"] == 3 and seen["attempts"] == 2, seen
    assert seen["gaps"] >= 1 and seen["marks"] == ["message", "event"], seen
    assert '"approved_by": "ops"' in seen["result"], seen
    assert hold.status is rt.WorkflowStatus.CANCELLED
    assert seen["cancel_button_after"] is True
    assert "viewer-orders" in seen["channels"], seen
    assert seen["no_cookie_status"] == 401
    assert "ConnectionError: card gateway down" in seen["error_shown"]
    assert "Traceback" in seen["error_shown"], seen
    assert seen["resumed_result"] == '"charged 3"', seen
    for name in ("list", "instance", "channels"):
        assert (tmp_path / f"viewer-{name}.png").stat().st_size > 5000

