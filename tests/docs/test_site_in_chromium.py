"""The built site as a person sees it: served on 127.0.0.1 by a plain static file server,
opened in headless Chromium (Debian's ``chromium`` driven by Playwright, as in
tests/romancy_trio/test_ws_chromium.py), two pages rendered and photographed. Screenshots go to
``tmp_path`` and, when ``ROMANCY_TRIO_SCREENSHOTS`` names a directory, there too (the ones in
docs/images are made so: ``ROMANCY_TRIO_SCREENSHOTS=docs/images``)."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.romancy_trio.test_ws_chromium import CHROMIUM_FLAGS, chromium_or_skip

PAGES = {  # screenshot name -> (path, its heading, a text its article must show)
    "site-getting-started": ("getting-started/", "Getting started", "trio.run(main)"),  # snippet
    "site-api-reference": ("api/romancy_trio/", "romancy_trio", "open_app"),
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served_site(built_site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(built_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_two_pages_render_in_chromium(served_site: str, tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    folders = [tmp_path]
    if os.environ.get("ROMANCY_TRIO_SCREENSHOTS"):
        folders.append(Path(os.environ["ROMANCY_TRIO_SCREENSHOTS"]))
    seen: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            for name, (path, _, text) in PAGES.items():
                response = page.goto(f"{served_site}/{path}")
                page.wait_for_selector("article h1", timeout=60_000)
                seen[name] = {
                    "status": response.status if response else None,
                    "title": page.title(),
                    "h1": page.inner_text("article h1"),
                    "text_visible": page.locator("article").get_by_text(text).first.is_visible(),
                    "nav": page.locator("nav.md-nav").count(),
                    "stylesheets": page.evaluate("document.styleSheets.length"),
                }
                for folder in folders:
                    page.screenshot(path=str(folder / f"{name}.png"))
        finally:
            browser.close()
    for name, (_, heading, _) in PAGES.items():
        got = seen[name]
        assert got["status"] == 200, got
        assert heading in got["h1"], got
        assert got["title"].endswith("romancy_trio"), got  # "<page> - romancy_trio"
        assert got["text_visible"], got
        assert got["nav"] > 0 and got["stylesheets"] > 0, f"Material's theme did not load: {got}"
        shot = tmp_path / f"{name}.png"
        assert shot.stat().st_size > 10_000, "a blank page would compress to almost nothing"
        print(f"\n{name}: {shot}")
