"""A competing taker in its own process, for the multi-process tests.

    python -m tests.romancy_channels.taker_proc DSN SCHEMA NAME CHANNEL TOTAL [HOLD_AFTER]

Subscribes, prints ``ready``, waits for a line on stdin, then takes messages one transaction at a
time, recording each take in ``takes`` in the same transaction. It stops once ``takes`` holds
TOTAL rows. With HOLD_AFTER it commits that many takes, then takes one more, prints
``holding <id>`` and sleeps inside the open transaction (waiting to be killed).
"""

from __future__ import annotations

import sys

import trio

from romancy_channels import ChannelEngine, ChannelMode
from romancy_trio.storage._mysql import MysqlDatabase
from romancy_trio.storage._mysql_conn import parse_url
from romancy_trio.storage._postgres import PostgresDatabase

TAKES_DDL = """
    CREATE TABLE IF NOT EXISTS takes (
        message_id bigint NOT NULL UNIQUE,
        taker      text NOT NULL
    )"""


def say(line: str) -> None:
    print(line, flush=True)


async def main(
    dsn: str, schema: str, name: str, channel: str, total: int, hold_after: int | None
) -> None:
    db: PostgresDatabase | MysqlDatabase
    if dsn.startswith("mysql://"):
        db = MysqlDatabase(parse_url(dsn), schema=schema, max_size=1)
    else:
        db = PostgresDatabase(dsn, schema=schema, max_size=1)
    engine = ChannelEngine(db.dialect, schema=schema)
    try:
        async with db.transaction() as tx:
            await engine.subscribe_tx(tx, channel, name, ChannelMode.COMPETING, now=0.0)
        say("ready")
        await trio.to_thread.run_sync(sys.stdin.readline)
        committed = 0
        while True:
            async with db.transaction() as tx:
                message = await engine.take_next_tx(tx, channel, name)
                if message is not None:
                    await tx.execute(
                        "INSERT INTO takes (message_id, taker) VALUES (%s, %s)",
                        (message.id, name),
                    )
                    if hold_after is not None and committed == hold_after:
                        say(f"holding {message.id}")
                        await trio.sleep_forever()
                    committed += 1
                    continue
                row = await tx.fetchone("SELECT count(*) FROM takes")
            assert row is not None
            if row[0] >= total:
                break
            await trio.sleep(0.01)  # what is left is claimed in other open transactions
        say(f"done {committed}")
    finally:
        await db.aclose()


if __name__ == "__main__":
    args = sys.argv[1:]
    hold = int(args[5]) if len(args) > 5 else None
    trio.run(main, args[0], args[1], args[2], args[3], int(args[4]), hold)
