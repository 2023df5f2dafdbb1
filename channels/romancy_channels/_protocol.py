"""The contracts of the engine: the transaction it runs in, and the SQL a dialect provides.

``channels`` never imports ``romancy_trio``; `ChannelTx` is structural, so romancy_trio's
transaction objects (and any other driver with the same method shapes) satisfy it as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]


class ChannelTx(Protocol):
    """One open transaction on one connection. The engine never commits or rolls it back.

    Queries use the driver's placeholder style (PostgreSQL ``%(name)s``, SQLite ``:name``).
    """

    async def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...

    async def notify(self, topic: str, payload: str) -> None:
        """Announce ``payload`` on ``topic`` when (and only if) this transaction commits."""
        ...


MESSAGE_COLUMNS = "id, channel, data, metadata, target, published_at"
"""The columns every statement that returns messages returns, in this order."""


@dataclass(frozen=True, slots=True)
class ChannelQueries:
    """Every statement of the engine in one dialect. All parameters are named.

    Mode strings are `ChannelMode` values. "Message rows" are `MESSAGE_COLUMNS`.
    """

    lock_mode: str
    """channel, mode, now. Create the channel row or keep it; set its mode if it has none
    (PostgreSQL: row-locks the channel until commit, waiting for in-flight publishers).
    -> (locked mode,)"""
    subscribe: str
    """channel, subscriber, mode, now. Insert the subscription unless it exists, its cursor at
    the channel's current last message id (0 if none)."""
    unsubscribe: str  # channel, subscriber -> rowcount
    subscription_for_take: str
    """channel, subscriber -> (mode, cursor); PostgreSQL locks the subscription row so two
    takes for one broadcast subscriber are serialised."""
    subscribers: str  # channel -> (subscriber, mode) ordered by subscriber
    publish: str
    """channel, data, metadata, target, now -> (id,). PostgreSQL first row-locks the channel
    (creating its row if needed), so that within one channel ids grow in commit order: a
    cursor never passes a message that is committed later."""
    publish_many: str | None
    """channel, data (a list of JSON texts), metadata, target, now -> (id, data) per message,
    ids drawn in the order of ``data`` (the engine checks): several messages in one statement
    (PostgreSQL, after the same channel row lock as ``publish``). None: the engine runs
    ``publish`` once per message."""
    next_broadcast: str
    """channel, subscriber, cursor -> the first untargeted message row after cursor."""
    advance_cursor: str  # channel, subscriber, cursor
    claim_competing: str
    """channel, subscriber, now -> the oldest unclaimed message row that is untargeted or
    targeted at subscriber, now claimed by it (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
    take: str | None
    """channel, subscriber, now -> one row (mode, cursor, *message row): mode and cursor NULL
    if not subscribed, the message columns NULL when there is nothing to take. The whole
    take in one statement (PostgreSQL: the subscription row-locked, then the competing
    claim, or the claim of a direct message, or the broadcast step with its cursor
    advanced). None: the engine runs ``subscription_for_take``, then ``claim_competing``,
    or ``next_broadcast``, ``claim_direct`` and ``advance_cursor``."""
    has_message: str
    """channel, subscriber -> one row (bool-ish,): whether a take would find something now
    (in the subscription's mode; only direct messages if not subscribed). One statement,
    with ``{woken}`` to be replaced by an SQL expression: how many other subscribers are
    already on their way to take from this competing channel, so that as many untargeted
    messages are left to them (0: none)."""
    claim_direct: str
    """channel, subscriber, now, before -> the oldest unclaimed message row targeted at
    subscriber with id < before, now claimed by it (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
    read_after: str  # channel, after_id, limit -> untargeted message rows with id > after_id
    cleanup: str
    """cutoff, batch -> rowcount. Delete at most batch messages: claimed before cutoff, or
    unclaimed, published before cutoff, and receivable by no current subscription."""
    unlocked_publish: tuple[str, str | None] | None = None
    """``publish`` and ``publish_many`` for a competing channel: without the channel row
    lock, so publishers never wait for each other (competing takers claim any unclaimed
    message: they need no commit order). None: the dialect publishes one at a time anyway
    (SQLite)."""
