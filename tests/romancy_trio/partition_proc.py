"""A worker for the partition tests (issue #30): ``python -m tests.romancy_trio.partition_proc``.

Arguments: URL SCHEMA WORKER_ID. Environment: ``LEASE_TTL`` (seconds; default: AppConfig's),
``MARKER_DIR`` (required). Logs at INFO on stderr; prints ``ready`` once serving and, on
SIGTERM, ``stats leases_lost=<n> started=<n>`` before it leaves.

The workflow ``cut_steps`` runs ``n`` transactional steps; each inserts its ledger row, touches
``<instance>.<step>.<worker>`` in ``MARKER_DIR`` once its transaction is open, then - while
the file ``hold.<worker>`` exists there - waits inside the transaction (idle in transaction,
its row not yet committed), and sleeps ``seconds`` on the server (``pg_sleep``).
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
async def cut_step(ctx: ActivityContext, n: int, seconds: float) -> str:
    marker = Path(os.environ["MARKER_DIR"])
    await ctx.db.execute("INSERT INTO ledger (instance_id, step, worker_id) VALUES (?, ?, ?)",
                         (ctx.instance_id, n, ctx.worker_id))
    (marker / f"{ctx.instance_id}.{n}.{ctx.worker_id}").touch()
    while (marker / f"hold.{ctx.worker_id}").exists():
        await trio.sleep(0.05)
    if seconds:
        await ctx.db.execute("SELECT pg_sleep(?)", (seconds,))
    return ctx.worker_id


@workflow
async def cut_steps(ctx: WorkflowContext, n: int, seconds: float) -> list[str]:
    return [await cut_step(ctx, k, seconds) for k in range(n)]


async def main(url: str, schema: str, worker_id: str) -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lease = os.environ.get("LEASE_TTL")
    config = AppConfig(schema=schema) if lease is None else AppConfig(
        schema=schema, lease_ttl=float(lease))
    await serve_until_sigterm(url, worker_id, [cut_steps, cut_step], config)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
