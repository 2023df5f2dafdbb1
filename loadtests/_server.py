"""A ``hypercorn -k trio`` server subprocess for the HTTP and websocket scenarios."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
SOURCE_PATH = os.pathsep.join(str(ROOT / d) for d in ("", "notify", "channels"))  # this checkout
STOP_TIMEOUT = 10.0
"""seconds the server gets to stop after SIGTERM before its process group is killed"""


async def start_server(url: str, schema: str | None, *, workflows: str = "",
                       backlog: int = 512) -> tuple[trio.Process, int]:
    """``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` on 127.0.0.1:<free port>, in its
    own process group (hypercorn runs its worker in a child process); returns it and the port.
    ``workflows``: modules to import (``ROMANCY_TRIO_WORKFLOWS``). Stop it with `stop_server`;
    drain its stderr (`drain`) while it runs, so it never blocks on a full pipe."""
    env = {**os.environ, "PYTHONPATH": SOURCE_PATH, "ROMANCY_TRIO_URL": url,
           "ROMANCY_TRIO_WORKFLOWS": workflows}
    if schema is not None:
        env["ROMANCY_TRIO_SCHEMA"] = schema
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        "--bind",
        "127.0.0.1:0",
        "--backlog",
        str(backlog),
        "romancy_trio.asgi:app_from_env()",
    ]
    proc = await trio.lowlevel.open_process(
        command, cwd=ROOT, env=env, stderr=subprocess.PIPE, start_new_session=True
    )
    assert proc.stderr is not None
    log, marker = b"", b"Running on http://127.0.0.1:"
    try:
        with trio.fail_after(60):
            while marker not in log or b" " not in log.split(marker)[1]:
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    raise RuntimeError(f"server did not start:\n{log.decode(errors='replace')}")
                log += chunk
    except BaseException:
        await stop_server(proc)
        raise
    return proc, int(log.split(marker)[1].split(b" ")[0])


async def stop_server(proc: trio.Process) -> None:
    """SIGTERM (hypercorn then stops its worker process) and wait up to ``STOP_TIMEOUT``; then
    SIGKILL whatever is left of the server's process group (the parent after a timeout, or a
    worker it left behind: a bare kill of the parent would orphan its worker) and reap. The
    process is reaped only at the end, so its pid - the group's id - cannot have been reused."""
    with trio.CancelScope(shield=True):
        if not hasattr(os, "waitid"):  # macOS before Python 3.13: no waiting without reaping
            proc.terminate()
            with trio.move_on_after(STOP_TIMEOUT):
                await proc.wait()
            if proc.returncode is None:  # still running, so not reaped: the group is ours
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return
        try:
            if not _exited(proc.pid):
                os.kill(proc.pid, signal.SIGTERM)  # proc.terminate() might reap it first
                with trio.move_on_after(STOP_TIMEOUT):
                    while not _exited(proc.pid):
                        await trio.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ChildProcessError, ProcessLookupError):
            pass  # already reaped, or nothing left in the group
        await proc.wait()


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


async def drain(stream: Any) -> None:
    """Keep reading the server's stderr so it never blocks on a full pipe."""
    while await stream.receive_some():
        pass
