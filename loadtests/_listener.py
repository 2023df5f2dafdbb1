"""A bare listener process: the least any process can do to hear a notification channel.

    python -m loadtests._listener DSN CHANNEL

It opens one autocommit connection, ``LISTEN``s on ``CHANNEL``, prints ``ready`` and then
only reads notifications (psycopg's blocking ``notifies()``; nothing is done with them) until
it is killed. `loadtests.processes_cpu` runs a few beside one worker to count the floor of
"every process hears every work notification": what PostgreSQL 15 (which signals every
listening backend of the database for each NOTIFY) and a process's bare read cost, with no
romancy_trio code in that process at all.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import trio
from psycopg import sql

from ._common import ROOT, check_local
from ._worker import child_env, said_ready


def main(argv: list[str] | None = None) -> None:
    dsn, channel = (sys.argv[1:] if argv is None else argv)
    check_local(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        print("ready", flush=True)
        for _ in conn.notifies():
            pass


@asynccontextmanager
async def open_listeners(dsn: str, channel: str, count: int,
                         start_timeout: float = 30) -> AsyncIterator[list[trio.Process]]:
    """Start ``count`` bare listeners on ``channel``, wait until each listens; kill them on
    exit."""
    env = child_env()
    procs: list[trio.Process] = []
    try:
        for _ in range(count):
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "loadtests._listener", dsn, channel],
                cwd=ROOT, env=env, stdout=subprocess.PIPE)
            procs.append(proc)
            if not await said_ready(proc, start_timeout):
                raise RuntimeError(f"listener {len(procs)} did not start (exit "
                                   f"{proc.returncode})")
        yield procs
    finally:
        with trio.CancelScope(shield=True):
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
                await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()


if __name__ == "__main__":
    main()
