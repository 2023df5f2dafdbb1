"""channels: durable broadcast and competing channels between workflows, in SQL.

Installed as the top-level package ``channels``. It imports nothing of ``romancy_trio``: it
runs in any transaction that satisfies `ChannelTx` (``execute`` / ``fetchone`` / ``fetchall`` /
``notify``), so the runtime can consume a message in the same transaction that records the
consumption.

Usage::

    engine = ChannelEngine("postgres", schema="app")  # or "sqlite"; the tables' schema
    async with db.transaction() as tx:
        await engine.subscribe_tx(tx, "orders", "worker-1", ChannelMode.COMPETING, now=now)
    async with db.transaction() as tx:
        await engine.publish_tx(tx, "orders", '{"sku": 42}', now=now)
    async with db.transaction() as tx:
        message = await engine.take_next_tx(tx, "orders", "worker-1")
        ...record what was taken, in the same transaction...

Apply the tables with `migrations` (``(version, up_sql)`` pairs per dialect). A publish
announces the channel name on `NOTIFY_TOPIC` when its transaction commits; waiters re-check
with `ChannelEngine.has_message_tx` or simply try `ChannelEngine.take_next_tx`.
"""

from ._engine import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from ._engine import NOTIFY_TOPIC as NOTIFY_TOPIC
from ._engine import ChannelEngine as ChannelEngine
from ._migrations import migrations as migrations
from ._protocol import ChannelTx as ChannelTx
from ._sql import SCHEMA_TOKEN as SCHEMA_TOKEN
from ._sql import qualify as qualify
from ._sql import quote_identifier as quote_identifier
from ._sql import quote_mysql_identifier as quote_mysql_identifier
from ._sql import quote_schema as quote_schema
from ._types import ChannelError as ChannelError
from ._types import ChannelMode as ChannelMode
from ._types import ChannelModeError as ChannelModeError
from ._types import Message as Message

__all__ = [
    "MAX_NAME_LENGTH",
    "NOTIFY_TOPIC",
    "SCHEMA_TOKEN",
    "ChannelEngine",
    "ChannelError",
    "ChannelMode",
    "ChannelModeError",
    "ChannelTx",
    "Message",
    "migrations",
    "qualify",
    "quote_identifier",
    "quote_mysql_identifier",
    "quote_schema",
]
