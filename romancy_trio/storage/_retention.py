"""Data lifecycle: finished instances and archived ``recur`` runs are deleted after a retention.

Opt-in (``AppConfig.instance_retention``). The scheduler's maintenance loop calls these in
bounded batches, one transaction per batch. An instance is deleted only once it is finished
(completed, failed or cancelled) and has not changed for the retention; everything keyed by it
goes in the same transaction: its history, archived history, runs, waits, inbox, queue entry,
channel subscriptions and the direct messages addressed to it that nobody took. Archived runs
of any instance (a live one included) whose run ended before the retention go with their
history; the current run never has an end, so it is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._db import Database


@dataclass(frozen=True, slots=True)
class RetentionQueries:
    """Named params ``before`` (epoch seconds) and ``limit`` (the batch size)."""

    purge_finished: tuple[str, ...]
    """Run in order in one transaction; the last returns one row per instance deleted."""
    purge_runs: tuple[str, ...]
    """Run in order in one transaction; the last returns one row per archived run deleted."""


async def purge_finished(db: Database, q: RetentionQueries, *, before: float, batch: int
                         ) -> int:
    """Delete up to ``batch`` instances that finished before ``before``, with all their rows."""
    return await _purge(db, q.purge_finished, before, batch)


async def purge_runs(db: Database, q: RetentionQueries, *, before: float, batch: int) -> int:
    """Delete up to ``batch`` archived runs that ended before ``before``, with their history."""
    return await _purge(db, q.purge_runs, before, batch)


async def _purge(db: Database, statements: tuple[str, ...], before: float, batch: int) -> int:
    params = {"before": before, "limit": batch}
    results = await db.fetch_batch([(s, params) for s in statements])
    return len(results[-1])
