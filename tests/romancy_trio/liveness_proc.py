"""A worker for the liveness tests (issue #17): ``python -m tests.romancy_trio.liveness_proc``.

Arguments: URL SCHEMA WORKER_ID. Logs at INFO on stderr; prints ``ready`` once serving and, on
SIGTERM, ``stats leases_lost=<n> started=<n>`` before it leaves. Environment: ``MARKER_DIR``:
``hold`` writes ``<instance>.<step>.<worker>`` there once its transaction is open (the test
then knows the instance runs, and where), and hangs if asked (see `hold`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, workflow
from tests.romancy_trio._drills import serve_until_sigterm

LEDGER_DDL = ("CREATE TABLE IF NOT EXISTS ledger (instance_id TEXT, step INTEGER, "
              "worker_id TEXT, PRIMARY KEY (instance_id, step))")
"""The effect ledger: the unique key makes a duplicated effect an error, not a silent row."""


@activity
async def hold(ctx: ActivityContext, step: int, seconds: float) -> str:
    """A transactional effect that keeps its transaction (and connection) for ``seconds``
    inside one statement (``pg_sleep``). If the file ``hang.<instance>`` exists in
    ``MARKER_DIR``, the first worker to remove it hangs instead, idle inside the transaction,
    until it is killed (its backend then rolls back at once)."""
    marker = os.environ.get("MARKER_DIR")
    hang = False
    if marker:
        try:
            Path(marker, f"hang.{ctx.instance_id}").unlink()
            hang = True
        except FileNotFoundError:
            pass
    await ctx.db.execute("INSERT INTO ledger (instance_id, step, worker_id) VALUES (?, ?, ?)",
                         (ctx.instance_id, step, ctx.worker_id))
    if marker:
        Path(marker, f"{ctx.instance_id}.{step}.{ctx.worker_id}").touch()
    if hang:
        await trio.sleep_forever()
    if seconds:
        await ctx.db.execute("SELECT pg_sleep(?)", (seconds,))
    return ctx.worker_id


@workflow
async def held(ctx: WorkflowContext, plan: dict[str, float]) -> list[str]:
    return [await hold(ctx, step, plan["seconds"]) for step in range(int(plan.get("steps", 1)))]


async def main(url: str, schema: str, worker_id: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AppConfig(schema=schema)  # the defaults: what a new user gets
    await serve_until_sigterm(url, worker_id, [held, hold], config)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
