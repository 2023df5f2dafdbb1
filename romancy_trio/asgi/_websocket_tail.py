"""The recent messages of one channel, shared by all of this process's feed connections to it.

Without sharing, N connections watching one channel run N identical queries and N JSON encodings
for every publish (and N connections of the App's pool at once). A `ChannelTail` has one keyed
notify watch and holds the last messages as encoded frames; a connection takes frames from it, and
only a connection that is behind what the tail holds (resuming with ``after``, or lagging) reads
the table itself. The tail has no task of its own: a connection that needs newer frames than the
tail holds becomes its *refresher* (waits on the watch, runs one query) while the others wait for
it; if the refresher's connection ends, another one takes over. The watch stays registered the
whole time, so nothing notified in between is missed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from romancy_channels import SCHEMA_TOKEN, ChannelEngine, Message, quote_identifier
from romancy_notify import Watch

from .._codec import dumps

if TYPE_CHECKING:
    from ..storage import Database

Frames = list[tuple[int, str]]
"""(message id, JSON text frame) pairs, in id order."""

# A channel's last message id. Belongs in `channels` (as ``ChannelEngine.last_id_tx``); kept
# here until it moves there. Same index as every channel read: channel_messages (channel, id).
_HEAD_SQL: Final[Mapping[str, str]] = {
    "postgres": (
        "SELECT COALESCE(max(id), 0) FROM {schema}.channel_messages WHERE channel = %(channel)s"),
    "sqlite": "SELECT COALESCE(max(id), 0) FROM channel_messages WHERE channel = :channel",
    # the URL's database holds the tables (sessions start there)
    "mysql": "SELECT COALESCE(max(id), 0) FROM channel_messages WHERE channel = %(channel)s",
}


@dataclass(slots=True)
class QueryCount:
    queries: int = 0


class Reads:
    """`channels.ChannelTx` over the database's single autocommit statements: the feed only
    reads, so it needs no transaction (one round trip per query)."""

    def __init__(self, db: Database, count: QueryCount) -> None:
        self._db = db
        self._count = count

    async def execute(self, query: str, params: Any = ()) -> int:
        self._count.queries += 1
        return await self._db.execute(query, params)

    async def fetchone(self, query: str, params: Any = ()) -> tuple[Any, ...] | None:
        self._count.queries += 1
        return await self._db.fetchone(query, params)

    async def fetchall(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        self._count.queries += 1
        return await self._db.fetchall(query, params)

    async def notify(self, topic: str, payload: str) -> None:
        raise RuntimeError("the channel feed only reads")

    async def head(self, dialect: str, channel: str) -> int:
        """The channel's last message id (0 if none)."""
        query = _HEAD_SQL[dialect].replace(SCHEMA_TOKEN, quote_identifier(self._db.schema))
        row = await self.fetchone(query, {"channel": channel})
        return 0 if row is None else int(row[0])


def encode(messages: list[Message]) -> Frames:
    return [(m.id, dumps(m.to_json())) for m in messages]


class ChannelTail:
    """The last ``keep`` to ``2 * keep`` frames of ``channel``; see the module docstring."""

    def __init__(
        self,
        channel: str,
        watch: Watch,
        engine: ChannelEngine,
        reads: Reads,
        *,
        batch: int,
        keep: int,
    ) -> None:
        self.channel = channel
        self.watch = watch
        self.users = 0
        self._engine = engine
        self._reads = reads
        self._batch = batch
        self._keep = keep
        self._ids: list[int] = []
        self._frames: list[str] = []
        self.base: int | None = None
        """Every message with ``base < id <= last_id`` is held (None: nothing read yet)."""
        self.last_id = 0
        self._more = False
        self._refreshing = False
        self._changed = trio.Event()

    def after(self, position: int) -> Frames | None:
        """The held frames after ``position``; None if ``position`` is older than what is held
        (read the table yourself, up to `base`)."""
        if self.base is None:
            return []
        if position < self.base:
            return None
        i = bisect_right(self._ids, position)
        return list(zip(self._ids[i:], self._frames[i:], strict=True))

    async def wait_beyond(self, position: int) -> None:
        """Return once the tail holds a message after ``position`` (it was empty after it)."""
        while self.base is None or self.last_id <= position:
            if self._refreshing:
                await self._changed.wait()
                continue
            self._refreshing = True
            try:
                await self._advance()
            finally:  # wake the others; if this was cancelled, one of them takes over
                self._refreshing = False
                self._changed.set()
                self._changed = trio.Event()

    async def _advance(self) -> None:
        if self.base is None:  # the watch is registered: read from the current head on
            self.base = self.last_id = await self._reads.head(self._engine.dialect, self.channel)
            return
        if not self._more:
            await self.watch.wait()  # a key, a gap or the fallback timer: read again all the same
            self._more = True  # the wakeup is spent: if the read is cancelled, the next one runs
        rows = await self._engine.read_after_tx(
            self._reads, self.channel, self.last_id, self._batch
        )
        self._more = len(rows) == self._batch
        for ident, frame in encode(rows):
            self._ids.append(ident)
            self._frames.append(frame)
            self.last_id = ident
        if len(self._ids) > 2 * self._keep:
            cut = len(self._ids) - self._keep
            self.base = self._ids[cut - 1]
            del self._ids[:cut], self._frames[:cut]
