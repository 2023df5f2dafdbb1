"""``python -m romancy_trio serve --mcp``: the HTTP server that opens its own App (hypercorn,
Trio mode, on 127.0.0.1) mounts the MCP endpoint when asked to, behind the same bearer token,
on every backend; the SDK's own client uses it. Without ``--mcp`` nothing is mounted."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from ..romancy_trio.conftest import Backend, make_backend
from ._sdk import call_ok
from .conftest import CWD, PYTHON, WORKFLOWS, server_env
from .test_http import AUTH, TOKEN, http_session

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:Async generator 'httpcore2\.:ResourceWarning"),
    pytest.mark.filterwarnings(r"ignore:Async generator 'httpx2\.:ResourceWarning"),
]


@asynccontextmanager
async def serve(backend: Backend, log: Path, *args: str) -> AsyncIterator[int]:
    """``serve --bind 127.0.0.1:0 *args`` for the backend's database; yields the bound port,
    stops it with SIGTERM and asserts it exited 0."""
    env = {k: v for k, v in server_env().items() if not k.startswith("ROMANCY_TRIO_")}
    env.update(ROMANCY_TRIO_URL=backend.url, ROMANCY_TRIO_SCHEMA=backend.config.schema,
               ROMANCY_TRIO_WORKFLOWS=WORKFLOWS, ROMANCY_TRIO_TOKEN=TOKEN)
    with log.open("wb") as sink:
        proc = await trio.lowlevel.open_process(
            [PYTHON, "-m", "romancy_trio", "serve", "--bind", "127.0.0.1:0", *args],
            cwd=CWD, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            with trio.fail_after(60):
                while b"Running on http://127.0.0.1:" not in log.read_bytes():
                    assert proc.poll() is None, log.read_text()
                    await trio.sleep(0.05)
            yield int(log.read_bytes().split(b"Running on http://127.0.0.1:")[1].split()[0])
        finally:
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                code = await proc.wait()
    assert code == 0, log.read_text()


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


async def test_serve_mounts_mcp_behind_the_token(backend: Backend, tmp_path: Path) -> None:
    async with serve(backend, tmp_path / "serve.log", "--mcp") as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            refused = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                      "method": "ping"})
            assert refused.status_code == 401
        async with http_session(port, AUTH) as session:
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"mcp_greet_start", "mcp_greet_result"} <= tools
            iid = (await call_ok(session, "mcp_greet_start", {"name": "Ada"}))["instance_id"]
            done = await call_ok(session, "mcp_greet_result",
                                 {"instance_id": iid, "wait_seconds": 30})
            assert done["result"] == "hello Ada"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:
            shown = await client.get(f"/instances/{iid}")  # the JSON API sees the same App
            assert shown.status_code == 200 and shown.json()["status"] == "completed"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_mcp_is_opt_in_and_its_path_is_checked(backend: Backend, tmp_path: Path) -> None:
    async with serve(backend, tmp_path / "plain.log") as port, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.post("/mcp", json={})).status_code == 404
    async with serve(backend, tmp_path / "agent.log", "--mcp", "/agent") as port:
        async with http_session(port, AUTH, path="/agent") as session:
            assert (await session.list_tools()).tools
    bad = await trio.run_process([PYTHON, "-m", "romancy_trio", "serve", "--mcp", "agent/"],
                                 cwd=CWD, env={**server_env(), "ROMANCY_TRIO_URL": backend.url},
                                 capture_stdout=True, capture_stderr=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.decode().strip() == "error: --mcp 'agent/': give a path such as /mcp"
