"""Connections across a link the test cuts: ``python -m tests.romancy_notify.link_proc URL``,
run inside the partition test's network namespace.

With ``LinkTimeouts(1, 1, 2, 2000)`` (keepalive probes after 1 s of silence, 1 s apart, 2 of
them; data unacknowledged for 2 s) it opens three connections: ``idle`` opens a transaction
and stays idle in it, ``waiting`` runs ``pg_sleep(60)`` (waiting for its answer when the link
is cut), ``sending`` is idle. It prints ``ready <idle's backend pid>``; once the test has cut
the link and sends a line on stdin, ``sending`` runs ``SELECT 1`` (sent into the cut). It
prints ``<name> <seconds after the line> <error type>`` for ``sending`` and ``waiting`` as
each fails (or ``<name> ok`` if it does not within 60 s), then ``done``.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from romancy_notify import LinkTimeouts
from romancy_notify.pg import TrioConnection, connect

LINK = LinkTimeouts(1, 1, 2, 2000)


async def _fails(name: str, conn: TrioConnection[Any], query: str, since: list[float]) -> None:
    try:
        with trio.move_on_after(60):
            await conn.execute(query)
            print(f"{name} ok", flush=True)
            return
        print(f"{name} ok", flush=True)  # not failed within 60 s
    except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
        print(f"{name} {trio.current_time() - since[0]:.2f} {type(exc).__name__}", flush=True)


async def main(url: str) -> None:
    idle = await connect(url, autocommit=True, link=LINK)
    waiting = await connect(url, autocommit=True, link=LINK)
    sending = await connect(url, autocommit=True, link=LINK)
    await idle.execute("BEGIN")
    await idle.execute("SELECT 1")
    since = [trio.current_time()]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_fails, "waiting", waiting, "SELECT pg_sleep(60)", since)
        print(f"ready {idle.info.backend_pid}", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # the link is cut now
        since[0] = trio.current_time()
        await _fails("sending", sending, "SELECT 1", since)
    print("done", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
