"""A second, independent client: the MCP Inspector's command-line mode (Node) against the
stdio server. Its set-up installs the pinned npm package (``tests/mcp/inspector/``, with its
lock file) into ``.mcp-inspector/`` in the checkout; without Node or npm (or the registry) the
tests skip locally and fail under ``CI``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from .._paths import PYTHONPATH, ROOT
from .conftest import CWD, PYTHON, Db

pytestmark = pytest.mark.slow

SPEC = Path(__file__).parent / "inspector"  # package.json + package-lock.json, pinned
FOLDER = ROOT / ".mcp-inspector"
BIN = FOLDER / "node_modules" / ".bin" / "mcp-inspector"


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"MCP Inspector: {message}", pytrace=False)
    pytest.skip(f"MCP Inspector: {message}")


@pytest.fixture(scope="module")
def inspector() -> Path:
    """The Inspector CLI, installed (once per lock file) with ``npm ci`` into the checkout."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed (apt-get install nodejs npm)")
    lock = (SPEC / "package-lock.json").read_text()
    marker = FOLDER / "installed-lock.json"
    if not (BIN.exists() and marker.exists() and marker.read_text() == lock):
        FOLDER.mkdir(exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SPEC / name, FOLDER / name)
        done = subprocess.run(
            ["npm", "ci", "--prefix", str(FOLDER), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not BIN.exists():
            _unavailable(f"npm ci (tests/mcp/inspector) failed: {done.stderr[-2000:]}")
        marker.write_text(lock)
    return BIN


async def run_cli(inspector: Path, db: Db, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """One Inspector CLI run (a fresh server subprocess each time): (exit code, out, err)."""
    done = await trio.run_process(
        [str(inspector), "--cli", "--cwd", CWD, "-e", f"PYTHONPATH={PYTHONPATH}", *args,
         "--", PYTHON, *db.server_args()],
        capture_stdout=True, capture_stderr=True, check=False,
        env={**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "inspector-catalog.json")})
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def output(out: str) -> Any:
    return json.loads(out[out.index("{"):out.rindex("}") + 1])


async def test_inspector_lists_tools_with_portable_schemas(inspector: Path, db: Db,
                                                           tmp_path: Path) -> None:
    with trio.fail_after(180):
        code, out, err = await run_cli(inspector, db, tmp_path, "--method", "tools/list",
                                       "--strict")
    assert code == 0, err  # --strict: exit 6 on any error-severity schema problem
    tools = {t["name"]: t for t in output(out)["tools"]}
    assert len(tools) == 20
    assert tools["mcp_greet_start"]["inputSchema"]["required"] == ["name"]
    assert tools["mcp_checkout_result"]["outputSchema"]["properties"]["result"]["properties"][
        "charge_id"] == {"title": "Charge Id", "type": "string"}


async def test_inspector_calls_tools(inspector: Path, db: Db, tmp_path: Path) -> None:
    with trio.fail_after(300):
        code, out, err = await run_cli(
            inspector, db, tmp_path, "--method", "tools/call", "--tool-name", "mcp_greet_start",
            "--tool-arg", "name=Inspector", "instance_id=from-inspector")
        assert code == 0, err
        assert output(out)["structuredContent"]["instance_id"] == "from-inspector"
        # another CLI run, another server process: the instance is in the database
        code, out, err = await run_cli(
            inspector, db, tmp_path, "--method", "tools/call", "--tool-name", "mcp_greet_result",
            "--tool-arg", "instance_id=from-inspector", "wait_seconds=30")
        assert code == 0, err
        assert output(out)["structuredContent"]["result"] == "hello Inspector"
        code, out, err = await run_cli(
            inspector, db, tmp_path, "--method", "tools/call", "--tool-name", "mcp_greet_start",
            "--tool-arg", "name=5")
        assert code != 0  # the CLI exits non-zero on a tool error...
        result = output(out)
        assert result["isError"] is True  # ...which names the bad parameter
        assert "parameter 'name'" in result["content"][0]["text"]
