"""The channel engine: delivery semantics over any `ChannelTx`, SQL chosen once per dialect.

Every ``*_tx`` method runs inside the caller's transaction and never commits: whatever it
consumes (a broadcast cursor step, a competing claim) is undone if that transaction rolls back,
which is what lets a workflow record "received message N" atomically with receiving it.

Semantics:

- A channel's mode is locked by its first subscription and stays locked (also after every
  subscriber left); publishing does not lock it.
- Broadcast: a subscriber receives, in id order, every message committed after its
  subscription (its cursor starts at the channel's last id), except messages targeted at
  another subscriber; each exactly once.
- Competing: each message goes to exactly one subscriber: the oldest unclaimed message that is
  untargeted or targeted at the taker. Messages published before anyone subscribed wait for
  the first taker (a queue).
- ``target`` (``send_to``): a direct message. Only that subscriber can receive it, and it
  need not subscribe: the message waits for it (like a competing queue of its own) until it
  takes it, once. A subscriber takes its direct messages in id order with the rest (its
  broadcast messages after its cursor, or the competing queue); a subscriber that never
  subscribed (or unsubscribed) takes only its direct messages.
- A publish announces the channel name on `NOTIFY_TOPIC` when its transaction commits.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import sql_mysql, sql_postgres, sql_sqlite
from ._protocol import ChannelQueries, ChannelTx, Row
from ._sql import qualify
from ._types import ChannelError, ChannelMode, ChannelModeError, Message

NOTIFY_TOPIC = "romancy_channel"
"""The NOTIFY topic of every publish; the payload is the channel name."""

_MAX_ID = 2**63 - 1
MAX_NAME_LENGTH = 200
"""The longest channel or subscriber name, in characters."""

_DIALECTS: Mapping[str, ChannelQueries] = {
    "postgres": sql_postgres.QUERIES,
    "sqlite": sql_sqlite.QUERIES,
    "mysql": sql_mysql.QUERIES,
}
# C0 and C1 control characters (NUL included) and lone surrogates (not encodable as UTF-8).
_BAD_NAME_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class ChannelEngine:
    """Durable broadcast and competing channels in the tables of ``channels.migrations``."""

    def __init__(self, dialect: str, *, notify_topic: str = NOTIFY_TOPIC,
                 schema: str = "public") -> None:
        """``schema``: where the PostgreSQL tables are (MySQL: the database); every statement
        names it, so the transaction's connection needs no search_path (ignored on SQLite)."""
        try:
            queries = _DIALECTS[dialect]
        except KeyError:
            known = ", ".join(sorted(_DIALECTS))
            raise ValueError(f"unknown dialect {dialect!r} (known: {known})") from None
        self._q = queries if dialect == "sqlite" else qualify(queries, schema, dialect=dialect)
        self.dialect = dialect
        self.notify_topic = notify_topic

    async def subscribe_tx(
        self, tx: ChannelTx, channel: str, subscriber: str, mode: ChannelMode, *, now: float
    ) -> None:
        """Subscribe; idempotent. The channel's first subscription locks its mode.

        Raises `ChannelModeError` if the channel is locked to another mode. Re-subscribing
        keeps a broadcast subscriber's position.
        """
        _check_name("channel", channel)
        _check_name("subscriber", subscriber)
        mode = _check_mode(mode)
        _check_time("now", now)
        args = {"channel": channel, "subscriber": subscriber, "mode": mode.value, "now": now}
        row = await tx.fetchone(self._q.lock_mode, args)
        assert row is not None  # an upsert with RETURNING returns its row
        locked = ChannelMode(row[0])
        if locked is not mode:
            raise ChannelModeError(channel, locked, mode)
        await tx.execute(self._q.subscribe, args)

    async def unsubscribe_tx(self, tx: ChannelTx, channel: str, subscriber: str) -> bool:
        """Stop delivery to ``subscriber`` (but of its direct messages); whether it was
        subscribed. The mode stays locked."""
        _check_name("channel", channel)
        _check_name("subscriber", subscriber)
        args = {"channel": channel, "subscriber": subscriber}
        return await tx.execute(self._q.unsubscribe, args) > 0

    async def publish_tx(
        self,
        tx: ChannelTx,
        channel: str,
        data_json: str,
        *,
        metadata_json: str = "{}",
        target: str | None = None,
        now: float,
    ) -> int:
        """Publish JSON ``data_json``; return the message id. Visible to takers on commit.

        ``target`` sends it to that one subscriber only. On PostgreSQL this row-locks the
        channel until the transaction ends (see `romancy_channels.sql_postgres`).
        """
        (message_id,) = await self.publish_many_tx(tx, channel, [data_json],
                                                   metadata_json=metadata_json, target=target,
                                                   now=now)
        return message_id

    async def publish_many_tx(
        self,
        tx: ChannelTx,
        channel: str,
        data_json: Sequence[str],
        *,
        metadata_json: str = "{}",
        target: str | None = None,
        now: float,
    ) -> list[int]:
        """Publish each JSON text of ``data_json`` (same metadata and target); their ids, in
        order. One statement on PostgreSQL; otherwise one per message."""
        statements = self.publish_statements(channel, data_json, metadata_json=metadata_json,
                                             target=target, now=now)
        rows = [await tx.fetchall(query, args) for query, args in statements]
        await self.announce_tx(tx, channel)
        return self.published_ids(data_json, rows)

    def publish_statements(
        self,
        channel: str,
        data_json: Sequence[str],
        *,
        metadata_json: str = "{}",
        target: str | None = None,
        now: float,
        mode: ChannelMode | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """What `publish_many_tx` runs, checked, for a caller that sends it together with its
        own statements (in one round trip): run them in order in one transaction, then call
        `announce_tx` and read the ids with `published_ids`. ``mode``: the channel's mode,
        if the caller knows it (it never changes once set); a competing channel's publish
        then takes no lock (see `ChannelQueries.unlocked_publish`)."""
        args = _publish_args(channel, data_json, metadata_json, target, now)
        if not data_json:
            return []
        one, many = self._q.publish, self._q.publish_many
        if mode is ChannelMode.COMPETING and self._q.unlocked_publish is not None:
            one, many = self._q.unlocked_publish
        if many is None or len(data_json) < 2:
            return [(one, {**args, "data": d}) for d in data_json]
        return [(many, {**args, "data": list(data_json)})]

    def published_ids(self, data_json: Sequence[str], rows: Sequence[Sequence[Row]]
                      ) -> list[int]:
        """The message ids, in the order of ``data_json``, from the rows of each statement of
        `publish_statements`."""
        if len(rows) == len(data_json):  # one statement per message: (id,)
            return [int(r[0][0]) for r in rows]
        (found,) = rows  # publish_many: (id, data) per message
        drawn = sorted((int(r[0]), r[1]) for r in found)
        if [d for _, d in drawn] != list(data_json):  # ids must follow the given order
            raise RuntimeError("publish_many: ids were not drawn in the order of the messages")
        return [i for i, _ in drawn]

    async def announce_tx(self, tx: ChannelTx, channel: str) -> None:
        """Announce a publish on ``channel`` (on `notify_topic`) when ``tx`` commits."""
        await tx.notify(self.notify_topic, channel)

    async def take_next_tx(
        self, tx: ChannelTx, channel: str, subscriber: str, *, now: float | None = None
    ) -> Message | None:
        """Consume the next message for ``subscriber`` in the caller's transaction, or ``None``.

        Broadcast: the next message after the subscriber's cursor (the cursor advances), or
        its oldest direct message if that comes first. Competing: the oldest unclaimed
        message that is untargeted or for ``subscriber``. Not subscribed: its oldest direct
        message. A direct or competing message is claimed by ``subscriber`` (``claimed_at``
        is ``now``, default the local clock); a claim that another open transaction holds
        is skipped, never waited for.

        On PostgreSQL the subscription row is locked until the transaction ends: two takes by
        the *same* subscriber serialise; different subscribers never wait for each other.
        """
        statement = self.take_statement(channel, subscriber, now=now)
        if statement is not None:
            return self.taken(channel, subscriber, await tx.fetchall(*statement))
        args: dict[str, Any] = {"channel": channel, "subscriber": subscriber,
                                "now": time.time() if now is None else _check_time("now", now)}
        sub = await tx.fetchone(self._q.subscription_for_take, args)
        if sub is not None and ChannelMode(sub[0]) is ChannelMode.COMPETING:
            row = await tx.fetchone(self._q.claim_competing, args)
            return None if row is None else _message(row)
        step = None if sub is None else await tx.fetchone(self._q.next_broadcast,
                                                          {**args, "cursor": int(sub[1])})
        before = _MAX_ID if step is None else int(step[0])
        direct = await tx.fetchone(self._q.claim_direct, {**args, "before": before})
        if direct is not None:
            return _message(direct)
        if step is None:
            return None
        await tx.execute(self._q.advance_cursor, {**args, "cursor": step[0]})
        return _message(step)

    def take_statement(self, channel: str, subscriber: str, *, now: float | None = None
                       ) -> tuple[str, dict[str, Any]] | None:
        """The whole of `take_next_tx` as one statement, checked, for a caller that sends it
        together with its own (one round trip); read its rows with `taken`. None where the
        dialect takes in several steps: use `take_next_tx`."""
        _check_name("channel", channel)
        _check_name("subscriber", subscriber)
        if self._q.take is None:
            return None
        claimed_at = time.time() if now is None else _check_time("now", now)
        return self._q.take, {"channel": channel, "subscriber": subscriber, "now": claimed_at}

    def taken(self, channel: str, subscriber: str, rows: Sequence[Row]) -> Message | None:
        """The message a `take_statement` took, from its rows; None if there was none."""
        if not rows or rows[0][2] is None:
            return None
        return _message(rows[0][2:])

    async def subscribers_tx(self, tx: ChannelTx, channel: str) -> list[tuple[str, ChannelMode]]:
        """The channel's subscribers and their mode, ordered by subscriber."""
        _check_name("channel", channel)
        rows = await tx.fetchall(self._q.subscribers, {"channel": channel})
        return [(str(name), ChannelMode(mode)) for name, mode in rows]

    async def has_message_tx(self, tx: ChannelTx, channel: str, subscriber: str) -> bool:
        """Whether `take_next_tx` would find something now (a hint: on PostgreSQL a message
        being claimed in another open transaction still counts)."""
        query, args = self.has_message_statement(channel, subscriber)
        return self.has_message(channel, subscriber, await tx.fetchall(query, args))

    def has_message_statement(self, channel: str, subscriber: str, *, woken: str = "0"
                              ) -> tuple[str, dict[str, Any]]:
        """`has_message_tx` as one statement (a SELECT of one row and one column), checked,
        to send with or inside others; `has_message` reads its rows. ``woken``: an SQL
        expression (parameters named ``channel``/``subscriber``, or the caller's own)
        counting the other subscribers already on their way to take from this channel: on a
        competing channel, that many untargeted messages are theirs."""
        _check_name("channel", channel)
        _check_name("subscriber", subscriber)
        return (self._q.has_message.replace("{woken}", woken),
                {"channel": channel, "subscriber": subscriber})

    def has_message(self, channel: str, subscriber: str, rows: Sequence[Row]) -> bool:
        """What a `has_message_statement` found."""
        return bool(rows and rows[0][0])

    async def read_after_tx(
        self, tx: ChannelTx, channel: str, after_id: int, limit: int
    ) -> list[Message]:
        """Untargeted messages with id > ``after_id``, in order: a read-only view for external
        consumers (no subscription, no cursor, no claim; claimed messages included)."""
        _check_name("channel", channel)
        if isinstance(after_id, bool) or not isinstance(after_id, int):
            raise ChannelError(f"after_id must be an int, not {after_id!r}")
        _check_positive("limit", limit)
        args = {"channel": channel, "after_id": after_id, "limit": limit}
        return [_message(row) for row in await tx.fetchall(self._q.read_after, args)]

    async def cleanup_tx(
        self, tx: ChannelTx, *, now: float, retention: float, batch: int = 1000
    ) -> int:
        """Delete at most ``batch`` messages that are done; return how many were deleted.

        Done: messages claimed (competing or direct) more than ``retention`` seconds before
        ``now``, and unclaimed messages published more than ``retention`` seconds ago that no
        current subscription can still receive (every broadcast cursor that could see it has
        passed it, or nobody who could receive it is subscribed; a direct message is kept
        while its target has any subscription on the channel). Call it until it returns less than
        ``batch``. On PostgreSQL rows locked by in-flight claims are skipped.
        """
        _check_time("now", now)
        _check_time("retention", retention)
        if retention < 0:
            raise ChannelError(f"retention must not be negative, not {retention!r}")
        _check_positive("batch", batch)
        return await tx.execute(self._q.cleanup, {"cutoff": now - retention, "batch": batch})


def _publish_args(channel: str, data_json: Sequence[str], metadata_json: str,
                  target: str | None, now: float) -> dict[str, Any]:
    """Check what a publish gets (every data text included); the statement's other params."""
    _check_name("channel", channel)
    if target is not None:
        _check_name("target", target)
    for data in data_json:
        _check_json("data", data)
    if not isinstance(_check_json("metadata", metadata_json), dict):
        raise ChannelError("metadata must be a JSON object")
    _check_time("now", now)
    return {"channel": channel, "metadata": metadata_json, "target": target, "now": now}


def _message(row: Row) -> Message:
    id_, channel, data, metadata, target, published_at = row
    return Message(
        id=int(id_),
        channel=str(channel),
        data=json.loads(data),
        metadata=json.loads(metadata),
        target=None if target is None else str(target),
        published_at=float(published_at),
    )


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str):
        raise ChannelError(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise ChannelError(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ChannelError(f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    bad = _BAD_NAME_CHARS.search(name)
    if bad is not None:
        raise ChannelError(
            f"{what} {name!r} contains {bad.group()!r} at {bad.start()}: control characters "
            "and lone surrogates are not allowed"
        )
    return name


def _check_json(what: str, text: object) -> Any:
    """Return the decoded value of JSON ``text``, or raise `ChannelError`."""
    if not isinstance(text, str):
        raise ChannelError(f"{what} must be JSON text (str), not {type(text).__name__}")
    if "\x00" in text:
        raise ChannelError(
            f"{what} JSON text contains a raw NUL (U+0000); escape it as \\u0000 inside a string"
        )
    try:
        text.encode("utf-8")
        return json.loads(text)
    except UnicodeEncodeError as exc:
        raise ChannelError(f"{what} JSON text is not valid UTF-8: {exc.reason}") from None
    except ValueError as exc:
        raise ChannelError(f"{what} is not valid JSON: {exc}") from None


def _check_mode(mode: object) -> ChannelMode:
    try:
        return ChannelMode(mode if isinstance(mode, str) else repr(mode))
    except ValueError:
        choices = ", ".join(m.value for m in ChannelMode)
        raise ChannelError(f"mode must be one of {choices}, not {mode!r}") from None


def _check_time(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChannelError(f"{what} must be a finite number of seconds, not {value!r}")
    return float(value)


def _check_positive(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChannelError(f"{what} must be a positive int, not {value!r}")
    return value
