"""The App opened by ASGI lifespan: in-process under hypercorn's Trio worker, and as a real
``hypercorn -k trio`` subprocess. Plus websocket refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from romancy_trio import open_app
from romancy_trio.asgi import LifespanApp, serve_asgi, serve_http

from .._sources import PYTHONPATH
from .conftest import Backend
from .test_http import WORKFLOWS, client_for

ROOT = Path(__file__).resolve().parents[2]


async def test_lifespan_app_opens_and_closes_the_app(backend: Backend) -> None:
    lifespan_app = LifespanApp(
        backend.url, workflows=WORKFLOWS, config=backend.config, bearer_token="t"
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_asgi, lifespan_app))
        assert lifespan_app.asgi is not None  # startup completed before serving began
        async with client_for(port, headers={"authorization": "Bearer t"}) as client:
            r = await client.post("/workflows/http_add", json={"input": [4, 5]})
            assert r.status_code == 202, r.text
            r = await client.get(f"/instances/{r.json()['instance_id']}/result?timeout=20")
            assert r.json()["result"] == 9
        nursery.cancel_scope.cancel()


async def test_lifespan_app_answers_503_until_started() -> None:
    lifespan_app = LifespanApp("sqlite:///unused.db")
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        raise AssertionError("not reached")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await lifespan_app({"type": "http", "headers": []}, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 503


async def test_websocket_is_refused(backend: Backend) -> None:
    upgrade = {
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app))
            async with client_for(port) as client:
                r = await client.get("/ws", headers=upgrade)
                assert r.status_code == 403  # closed before accept: the handshake is refused
                assert (await client.get("/healthz")).status_code == 200
            nursery.cancel_scope.cancel()


async def _start_hypercorn(
    env: dict[str, str], app: str = "examples.http_server:asgi"
) -> tuple[trio.Process, int]:
    """``hypercorn -k trio`` on 127.0.0.1 port 0; the bound port is read from its log."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "hypercorn", "-k", "trio", "--bind", "127.0.0.1:0", app],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, **env},
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = b""
    with trio.fail_after(30):
        while b"Running on http://127.0.0.1:" not in log:
            chunk = await proc.stderr.receive_some()
            if not chunk:
                raise AssertionError(f"hypercorn exited: {log.decode(errors='replace')}")
            log += chunk
    port = int(log.split(b"Running on http://127.0.0.1:")[1].split(b" ")[0])
    return proc, port


async def _stop(proc: trio.Process) -> tuple[int, str]:
    """SIGTERM (graceful: lifespan shutdown closes the App); returns (exit code, stderr)."""
    assert proc.stderr is not None
    proc.terminate()
    rest = b""
    with trio.fail_after(30):
        while chunk := await proc.stderr.receive_some():
            rest += chunk
        code = await proc.wait()
    await proc.stderr.aclose()
    return code, rest.decode(errors="replace")


@pytest.mark.slow
async def test_hypercorn_subprocess_serves_the_example(tmp_path: Path) -> None:
    env = {"ROMANCY_TRIO_URL": f"sqlite:///{tmp_path / 'http.db'}"}
    proc, port = await _start_hypercorn(env)
    try:
        async with client_for(port) as client:
            with trio.fail_after(20):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)
            r = await client.post("/workflows/http_example_greet", json={"input": "trio"})
            assert r.status_code == 202, r.text
            r = await client.get(f"/instances/{r.json()['instance_id']}/result?timeout=20")
            assert r.status_code == 200 and r.json()["result"] == "hello, trio"
    finally:
        code, log = await _stop(proc)
    assert code == 0, log
    assert "Traceback" not in log, log


@pytest.mark.slow
async def test_hypercorn_refuses_to_start_when_the_app_cannot_open(tmp_path: Path) -> None:
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "-k",
            "trio",
            "--bind",
            "127.0.0.1:0",
            "romancy_trio.asgi:app_from_env()",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, "ROMANCY_TRIO_URL": "nosuchdb://x"},
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = b""
    with trio.fail_after(30):
        while chunk := await proc.stderr.receive_some():
            log += chunk
        code = await proc.wait()
    await proc.stderr.aclose()
    # The worker fails startup and the server stops. (hypercorn 0.18 loses the worker's exit
    # code when it has worker processes, so the code itself is not asserted.)
    assert code is not None
    assert b"romancy_trio app did not start" in log, log
    assert b"unknown scheme 'nosuchdb'" in log, log
