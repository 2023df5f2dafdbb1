"""A relayer process for the two-relayer test, and :func:`relayer_process` to run one.

``python -m tests.romancy_trio.outbox_relayer_proc URL SCHEMA WORKER_ID SINK_URL`` runs only the
outbox relayer (no workflows) against the schema, woken by its own PostgreSQL LISTEN connection,
and prints ``ready`` once it is serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from romancy_notify import open_pg_hub
from romancy_trio.outbox import RelayerConfig, run_relayer
from romancy_trio.storage import Topics, open_store
from tests._paths import PYTHONPATH

from ._procs import ROOT


def outbox_topic(topics: Topics) -> str:
    """The app's outbox topic (per schema)."""
    return topics.outbox



@asynccontextmanager
async def relayer_process(
    url: str, schema: str, worker_id: str, sink_url: str
) -> AsyncIterator[None]:
    """Run a relayer process until the block ends (then SIGKILL it: it holds only claims)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", __name__, url, schema, worker_id, sink_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n") and (chunk := await proc.stdout.receive_some(100)):
                line += chunk
        assert line == b"ready\n", f"relayer {worker_id} did not start"
        yield
    finally:
        proc.kill()
        await proc.wait()
        await proc.stdout.aclose()


async def main(url: str, schema: str, worker_id: str, sink_url: str) -> None:
    config = RelayerConfig(
        sink_url=sink_url,
        batch_size=10,
        concurrency=8,
        initial_backoff=0.05,
        max_backoff=0.5,
        request_timeout=5.0,
        claim_ttl=30.0,
    )
    direct = os.environ.get("ROMANCY_TRIO_LISTENER_URL")  # set when url is a pooler
    async with (
        open_store(url, schema=schema, pool_size=4, session_url=direct) as store,
        open_pg_hub(url, [outbox_topic(store.topics)], listener_dsn=direct) as hub,
        trio.open_nursery() as nursery,
    ):
        relay = partial(run_relayer, store.db, hub, config, worker_id=worker_id)
        await nursery.start(partial(relay, topic=outbox_topic(store.topics)))
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
