"""Cross-process wake-ups on MySQL/MariaDB, which have no LISTEN/NOTIFY: a signal table.

A write that would NOTIFY on PostgreSQL appends ``(topic, payload)`` to ``romancy_signals`` in
its own transaction (the SQL module's scripts, and `MysqlTx.commit` for ``tx.notify``), so a
signal exists if and only if its write committed. Each worker's hub polls the table every
``AppConfig.mysql_signal_interval`` seconds with ONE indexed query, whatever the number of
waiting instances: the rows after the last id it read (primary-key range). In-process waiters
are woken at once after COMMIT as on the other dialects; the poll only carries what other
processes wrote, and skips this process's own rows (``origin``).

Auto-increment ids are handed out at INSERT but become visible at COMMIT, so a row with a
lower id can appear after a higher one was read. Ids skipped that way are remembered as *holes*
and asked for again by id (same query) for `HOLE_TTL` seconds; a hole never filled is a rolled
back transaction (or a very long one, whose waiters the fallback re-check serves). A poll that
fails, or a reader that fell behind the table's pruning, reports a gap: every waiter re-checks.

Trade-off: a smaller interval means faster cross-process wake-ups (half the interval on
average, plus the query) and more idle load: 1/interval queries per second per worker even
when nothing happens (0.05 s: 20 queries/s, each an index lookup that finds nothing). So the
interval adapts: while other processes' signals keep coming (one seen in the last
`ACTIVE_FOR` seconds) the reader polls every `FAST_INTERVAL` (10 ms: about 5 ms to notice a
signal on average, 100 queries/s while there is traffic anyway); idle, it falls back to the
configured interval. The first wake-up after a quiet spell waits for the slow poll.
Signals older than `KEEP` seconds are pruned in small batches by every worker, at most once per
`PRUNE_EVERY` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import pymysql

from .._errors import StorageUnavailableError
from ._db import Params, Row
from ._mysql import MysqlDatabase
from ._mysql_conn import MysqlConnection, run_statement

FAST_INTERVAL = 0.01
"""Seconds between polls while signals keep coming (the hub's own tick, see `tick`)."""
ACTIVE_FOR = 2.0
"""Seconds after another process's last signal during which the reader polls fast."""
HOLE_TTL = 5.0
KEEP = 120.0
PRUNE_EVERY = 10.0
BATCH = 1000


class SignalReader:
    """What `open_local_hub`'s ``fetch_elsewhere`` calls: the signals other processes committed
    since the last call (None: cannot tell, a gap)."""

    def __init__(self, db: MysqlDatabase, *, origin: str | None = None,
                 dedicated: bool = False, idle_interval: float = 0.0) -> None:
        """``origin``: whose rows to skip (default: ``db``'s own, this process's).
        ``dedicated``: read on a connection of its own in autocommit mode (one statement per
        poll instead of a SELECT and a COMMIT on a pooled session); `aclose` closes it.
        ``idle_interval``: when no signal came from elsewhere for `ACTIVE_FOR` seconds, a
        call less than this long after the last query answers "nothing new" without one
        (the hub then calls every `tick` seconds); 0: every call queries."""
        self._db = db
        self._idle_interval = idle_interval
        self._queried = -math.inf
        self._heard = -math.inf
        self._dedicated = dedicated
        self._conn: MysqlConnection | None = None
        t = f"`{db.schema}`.romancy_signals"
        self._origin = db.origin if origin is None else origin
        self._last: int | None = None
        self._holes: dict[int, float] = {}
        self._next_prune = 0.0
        self._last_read = 0.0
        self._read = f"""
            SELECT id, topic, payload, origin FROM {t}
            WHERE id > %(last)s OR id IN %(holes)s ORDER BY id LIMIT {BATCH}"""
        self._start = f"SELECT coalesce(max(id), 0), coalesce(min(id), 0) FROM {t}"
        # Old rows are found by a plain (non-locking) read and deleted by primary key: a
        # DELETE scanning a range would wait for any open transaction's new signal in it.
        self._old = (f"SELECT id FROM {t} WHERE created_at < NOW(6) - INTERVAL {int(KEEP)} "
                     f"SECOND ORDER BY created_at LIMIT {BATCH}")
        self._prune = f"DELETE FROM {t} WHERE id IN %(ids)s"
        self.polls = 0

    def tick(self, interval: float) -> float:
        """How often the hub should call this reader, for a configured ``interval``."""
        return min(interval, FAST_INTERVAL)

    async def __call__(self) -> Sequence[tuple[str, str]] | None:
        now = time.monotonic()
        if now - self._heard > ACTIVE_FOR and now - self._queried < self._idle_interval:
            return []  # quiet: the slow poll is not due yet
        self._queried = now
        self.polls += 1
        if time.monotonic() - self._last_read > KEEP / 2:
            self._last = None  # so long since the last read that pruning may have passed it
        try:
            if self._last is None:
                rows = await self._fetch(self._start, ())
                self._last = int(rows[0][0]) if rows else 0
                self._last_read = time.monotonic()
                return None  # started (or restarted): whatever came before, re-check
            rows = await self._fetch(self._read, {
                "last": self._last, "holes": tuple(self._holes) or (-1,)})
            now = time.monotonic()
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                old = await self._db.fetchall(self._old)
                if old:
                    await self._db.execute(self._prune, {"ids": tuple(r[0] for r in old)})
        except StorageUnavailableError:
            self._last = None  # read afresh once the database answers
            self._holes.clear()
            return None
        self._last_read = now
        notes = []
        for sid, topic, payload, origin in rows:
            sid = int(sid)
            if sid > self._last:
                for missing in range(self._last + 1, min(sid, self._last + BATCH)):
                    self._holes.setdefault(missing, now)
                self._last = sid
            else:
                self._holes.pop(sid, None)
            if origin != self._origin:
                notes.append((str(topic), str(payload)))
                self._heard = now
        for hole, seen in list(self._holes.items()):
            if now - seen > HOLE_TTL:
                del self._holes[hole]
        return notes

    async def _fetch(self, query: str, params: Params) -> list[Row]:
        if not self._dedicated:
            return await self._db.fetchall(query, params)
        try:
            if self._conn is None or self._conn.poisoned:
                await self.aclose()
                conn = await self._db.pool.open_connection()
                self._conn = conn
                await conn.run(_autocommit_on)
            return (await self._conn.run(lambda raw: run_statement(raw, query, params)))[1]
        except pymysql.MySQLError as exc:
            await self.aclose()  # opened afresh at the next poll
            raise StorageUnavailableError(f"MySQL at {self._db.address}: {exc}") from exc

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _autocommit_on(raw: pymysql.Connection[Any]) -> None:
    raw.autocommit(True)


def signal_reader(db: object) -> SignalReader:
    """The reader of ``db``'s signal table (a MySQL database)."""
    if not isinstance(db, MysqlDatabase):
        raise TypeError(f"signals are read from a MySQL database, not {type(db).__name__}")
    return SignalReader(db)
