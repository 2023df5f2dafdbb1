"""How much work waits: runnable instances, the outbox, channel messages (`App.backlog`).

Portable SQL (``:name`` placeholders through `translate`, tables qualified by the database's
schema - ``main`` on SQLite), read-only, a few counts: for metrics and dashboards, sampled now
and then, never on a hot path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from romancy_channels import quote_schema

from ._db import Database
from ._placeholders import translate
from ._schema import SCHEMA_TOKEN

_COUNTS = """
    SELECT
      (SELECT count(*) FROM {schema}.workflow_instances
       WHERE status = 'pending' OR (status = 'waiting' AND wake_at <= :now)),
      (SELECT count(*) FROM {schema}.workflow_instances WHERE status = 'waiting'),
      (SELECT count(*) FROM {schema}.outbox_events WHERE status = 'pending'),
      (SELECT count(*) FROM {schema}.outbox_events WHERE status = 'failed')"""

_VERSIONS = """
    SELECT workflow_name, code_version, count(*) FROM {schema}.workflow_instances
    WHERE status IN ('pending', 'waiting') AND code_version IS NOT NULL
    GROUP BY workflow_name, code_version"""

_CHANNELS = """
    SELECT c.channel,
      (SELECT count(*) FROM {schema}.channel_messages m
       WHERE m.channel = c.channel
         AND ((c.mode = 'competing' AND m.claimed_by IS NULL)
              OR (c.mode = 'broadcast' AND m.id > (
                  SELECT coalesce(min(s.cursor_id), m.id) FROM {schema}.channel_subscriptions s
                  WHERE s.channel = c.channel))))
    FROM {schema}.channels c ORDER BY c.channel LIMIT :limit"""


@dataclass(frozen=True, slots=True)
class Backlog:
    runnable: int
    """Instances pending, or waiting with a deadline already due (not yet claimed)."""
    waiting: int
    outbox_pending: int
    """Outbox events not delivered yet (``failed`` ones: ``outbox_failed``)."""
    outbox_failed: int
    channels: Mapping[str, int]
    """Per channel: messages not taken yet (competing) or not yet passed by its slowest
    subscriber (broadcast); the first ``limit`` channels by name."""
    stranded: int = 0
    """Instances of this app's workflows, pending or waiting, that no worker of this app may
    resume: they recorded a code version that is neither its ``code_version`` nor one of its
    ``compatible_versions`` (`AppConfig`). They wait for a worker of their version; during a
    rolling deploy that is the old workers, afterwards nobody: a count that stays above 0
    once the old workers are gone means instances left behind."""
    stranded_versions: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}))
    """``stranded`` per ``'<workflow>|<version>'``."""


async def read_backlog(db: Database, *, now: float, limit: int,
                       workflows: Collection[str] = (), resumable: Collection[str] = ()
                       ) -> Backlog:
    """``workflows``: the names this app runs; ``resumable``: the ``'<workflow>|<version>'``
    its workers resume (`Store.code_versions`): an instance of one of ``workflows`` with a
    version not in ``resumable`` is stranded."""
    schema = quote_schema(db.schema, db.dialect)
    counts = await db.fetchone(*translate(_COUNTS.replace(SCHEMA_TOKEN, schema),
                                          {"now": now}, db.dialect))
    rows = await db.fetchall(*translate(_CHANNELS.replace(SCHEMA_TOKEN, schema),
                                        {"limit": limit}, db.dialect))
    stranded: dict[str, int] = {}
    if workflows:
        resumable = set(resumable)
        for name, version, n in await db.fetchall(*translate(
                _VERSIONS.replace(SCHEMA_TOKEN, schema), {}, db.dialect)):
            key = f"{name}|{version}"
            if name in workflows and key not in resumable:
                stranded[key] = int(n)
    assert counts is not None
    runnable, waiting, pending, failed = (int(c) for c in counts)
    return Backlog(runnable, waiting, pending, failed,
                   MappingProxyType({str(r[0]): int(r[1]) for r in rows}),
                   sum(stranded.values()), MappingProxyType(stranded))


_SUBSCRIBERS = """
    SELECT s.channel, s.subscriber FROM {schema}.channel_subscriptions s
    WHERE s.channel IN (SELECT c.channel FROM {schema}.channels c
                        ORDER BY c.channel LIMIT :limit)
    ORDER BY s.channel, s.subscriber"""


async def read_subscribers(db: Database, *, limit: int) -> dict[str, list[str]]:
    """Per channel (the first ``limit`` by name), the instances subscribed to it."""
    schema = quote_schema(db.schema, db.dialect)
    rows = await db.fetchall(*translate(_SUBSCRIBERS.replace(SCHEMA_TOKEN, schema),
                                        {"limit": limit}, db.dialect))
    found: dict[str, list[str]] = {}
    for channel, subscriber in rows:
        found.setdefault(str(channel), []).append(str(subscriber))
    return found
