"""The outbox table: CloudEvents written in an activity's transaction, settled by relayers.

Sans-IO parts (event validation, the stable default id, the CloudEvents JSON body) are plain
functions; :class:`OutboxStore` runs the per-dialect statements of ``sql_postgres`` /
``sql_sqlite``. ``send_event_tx`` runs inside the activity's transaction and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, cast, runtime_checkable

import orjson

from .._cloudevent_rules import INT32, forbidden_char, is_extension_name
from .._codec import dumps, loads
from .._errors import InvalidInputError
from ..storage import Database, Session, Tx
from ..storage._db import Row

TOPIC_OUTBOX = "romancy_outbox"
"""The default topic announced (payload ``''``) by every transaction that adds outbox rows;
an app passes its own (per-schema) topic to both ``send_event_tx`` and the relayer."""

EVENT_COLUMNS = "event_id, source, type, subject, extensions, data, event_time"
ROW_COLUMNS = (
    f"{EVENT_COLUMNS}, instance_id, activity_id, status, attempts, last_error, created_at, "
    "delivered_at, claimed_by"
)
ExtensionValue = str | int | bool

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "romancy_trio://outbox")
_MAX_ATTRIBUTE = 1024


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxQueries:
    """The statements a dialect provides (named parameters throughout)."""

    insert: str  # event_id, source, type, subject, extensions, data, time, iid, aid
    run_no: str  # iid -> (run_no,)
    claim: str  # worker, ttl, limit -> (seq, claim_epoch, attempts, *EVENT_COLUMNS)
    delivered: str  # seq, worker, epoch -> (seq,) if the claim still held
    attempt_failed: str  # seq, worker, epoch, error, delay, max_attempts -> (new status,)
    release: str  # seq, worker, epoch -> (seq,) if the claim still held
    next_due: str
    """-> seconds until the earliest pending row is claimable (None: no pending row); uses the
    due index for unclaimed rows and the small claimed-rows index for the rest."""
    purge: str  # retention, limit: delete delivered rows older than retention seconds
    rows: str  # status (or None), limit -> ROW_COLUMNS


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One CloudEvent as stored: ``data`` is JSON text (None: the event has no data)."""

    event_id: str
    source: str
    type: str
    subject: str | None
    extensions: Mapping[str, ExtensionValue]
    data: str | None
    time: float

    def to_json(self) -> bytes:
        """The structured-mode body (``application/cloudevents+json``, specversion 1.0)."""
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.event_id,
            "source": self.source,
            "type": self.type,
            "time": rfc3339(self.time),
        }
        if self.subject is not None:
            body["subject"] = self.subject
        body.update(self.extensions)
        if self.data is not None:
            body["datacontenttype"] = "application/json"
            body["data"] = orjson.Fragment(self.data)  # stored JSON, embedded as is
        return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    seq: int
    epoch: int
    attempts: int
    """Delivery attempts made before this claim."""
    event: OutboxEvent


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """What the outbox table says about one event (for tests and operators)."""

    event_id: str
    source: str
    type: str
    subject: str | None
    extensions: Mapping[str, ExtensionValue]
    data: Any
    time: datetime
    instance_id: str | None
    activity_id: str | None
    status: OutboxStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    claimed_by: str | None


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def default_event_id(instance_id: str, run_no: int, activity_id: str, n: int) -> str:
    """The stable id of the ``n``-th event an activity sends: the same on every retry."""
    return str(uuid.uuid5(_NAMESPACE, f"{instance_id}\x1f{run_no}\x1f{activity_id}\x1f{n}"))


def _attribute(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"CloudEvent {name} must be a non-empty string, got {value!r:.80}")
    if len(value) > _MAX_ATTRIBUTE or forbidden_char(value) is not None:
        raise InvalidInputError(
            f"CloudEvent {name} must be at most {_MAX_ATTRIBUTE} characters with no control "
            f"characters, got {value!r:.80}"
        )
    return value


def _extensions(extensions: Mapping[str, object] | None) -> dict[str, ExtensionValue]:
    checked: dict[str, ExtensionValue] = {}
    for name, value in (extensions or {}).items():
        if not is_extension_name(name):
            raise InvalidInputError(
                f"CloudEvent extension name {name!r} must be 1-20 lower-case ASCII letters or "
                "digits and not a core attribute"
            )
        if isinstance(value, bool):
            checked[name] = value
        elif isinstance(value, int):
            if value not in INT32:
                raise InvalidInputError(f"CloudEvent extension {name!r}: {value} is not int32")
            checked[name] = value
        else:
            checked[name] = cast(str, _attribute(f"extension {name!r}", value))
    return checked


def make_event(
    type: str,
    data: Any,
    *,
    event_id: str,
    source: str,
    subject: str | None,
    extensions: Mapping[str, object] | None,
    time: float,
) -> OutboxEvent:
    """Validate the attributes (CloudEvents 1.0) and encode ``data``; InvalidInputError if bad."""
    return OutboxEvent(
        event_id=cast(str, _attribute("id", event_id)),
        source=cast(str, _attribute("source", source)),
        type=cast(str, _attribute("type", type)),
        subject=_attribute("subject", subject, optional=True),
        extensions=_extensions(extensions),
        data=None if data is None else dumps(data),
        time=time,
    )


@runtime_checkable
class _LazyTransaction(Protocol):
    """The activity's lazy session: ``tx()`` begins (once) and returns its transaction."""

    async def tx(self) -> Tx: ...


async def _transaction_of(session: Session) -> Tx:
    if isinstance(session, _LazyTransaction):
        return await session.tx()
    if callable(getattr(session, "notify", None)):
        return cast(Tx, session)  # already a transaction
    raise TypeError(f"{type(session).__name__} is not a transaction: cannot write to the outbox")


def queries_for(dialect: str, schema: str) -> OutboxQueries:
    """The dialect's statements; PostgreSQL's name ``schema`` (``storage.qualify``)."""
    if dialect == "postgres":
        from ..storage import qualify
        from .sql_postgres import QUERIES as POSTGRES

        return qualify(POSTGRES, schema)
    if dialect == "mysql":
        from ..storage.sql_mysql import qualify_mysql
        from .sql_mysql import QUERIES as MYSQL

        return qualify_mysql(MYSQL, schema)
    from .sql_sqlite import QUERIES as SQLITE

    return SQLITE


async def send_event_tx(
    session: Session,
    *,
    instance_id: str,
    activity_id: str,
    run_no: int | None,
    n: int,
    type: str,
    data: Any,
    source: str,
    subject: str | None,
    event_id: str | None,
    extensions: Mapping[str, object] | None,
    now: float,
    topic: str | None = None,
) -> str:
    """Add one event to the outbox in the session's transaction and announce it on commit.

    Idempotent per ``(source, id)``: an event already in the outbox is not added again.
    Returns the event's id.
    """
    tx = await _transaction_of(session)
    q = queries_for(tx.dialect, tx.schema)
    if event_id is None:
        if run_no is None:
            row = await tx.fetchone(q.run_no, {"iid": instance_id})
            run_no = 1 if row is None else int(row[0])
        event_id = default_event_id(instance_id, run_no, activity_id, n)
    event = make_event(
        type,
        data,
        event_id=event_id,
        source=source,
        subject=subject,
        extensions=extensions,
        time=now,
    )
    await tx.execute(
        q.insert,
        {
            "event_id": event.event_id,
            "source": event.source,
            "type": event.type,
            "subject": event.subject,
            "extensions": dumps(event.extensions),
            "data": event.data,
            "time": event.time,
            "iid": instance_id,
            "aid": activity_id,
        },
    )
    await tx.notify(topic or TOPIC_OUTBOX, "")
    return event.event_id


def _event(row: Row) -> OutboxEvent:
    event_id, source, type_, subject, extensions, data, time = row
    return OutboxEvent(event_id, source, type_, subject, loads(extensions), data, float(time))


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _outbox_row(row: Row) -> OutboxRow:
    ev = _event(row[:7])
    iid, aid, status, attempts, last_error, created, delivered, claimed_by = row[7:]
    return OutboxRow(
        event_id=ev.event_id,
        source=ev.source,
        type=ev.type,
        subject=ev.subject,
        extensions=ev.extensions,
        data=None if ev.data is None else loads(ev.data),
        time=datetime.fromtimestamp(ev.time, UTC),
        instance_id=iid,
        activity_id=aid,
        status=OutboxStatus(status),
        attempts=int(attempts),
        last_error=last_error,
        created_at=datetime.fromtimestamp(created, UTC),
        delivered_at=_ts(delivered),
        claimed_by=claimed_by,
    )


class OutboxStore:
    """Single-statement outbox operations (each its own short transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.q = queries_for(db.dialect, db.schema)

    async def claim(self, worker: str, *, limit: int, ttl: float) -> list[ClaimedEvent]:
        rows = await self.db.fetchall(self.q.claim, {"worker": worker, "ttl": ttl, "limit": limit})
        return [ClaimedEvent(int(r[0]), int(r[1]), int(r[2]), _event(r[3:])) for r in rows]

    async def delivered(self, claimed: ClaimedEvent, worker: str) -> bool:
        """Mark delivered, fenced by the claim: False if this claim no longer holds the row."""
        row = await self.db.fetchone(self.q.delivered, _fence(claimed, worker))
        return row is not None

    async def attempt_failed(
        self, claimed: ClaimedEvent, worker: str, *, error: str, delay: float, max_attempts: int
    ) -> OutboxStatus | None:
        """Count a failed attempt and release the claim: pending again after ``delay`` seconds,
        or failed once ``max_attempts`` are used. None if the claim no longer held."""
        params = {**_fence(claimed, worker), "error": error, "delay": delay}
        row = await self.db.fetchone(
            self.q.attempt_failed, {**params, "max_attempts": max_attempts}
        )
        return None if row is None else OutboxStatus(row[0])

    async def release(self, claimed: ClaimedEvent, worker: str) -> bool:
        """Give the row back unattempted (shutdown) so another relayer takes it at once."""
        return await self.db.fetchone(self.q.release, _fence(claimed, worker)) is not None

    async def next_due(self) -> float | None:
        row = await self.db.fetchone(self.q.next_due)
        return None if row is None or row[0] is None else float(row[0])

    async def purge_delivered(self, *, retention: float, limit: int) -> int:
        return await self.db.execute(self.q.purge, {"retention": retention, "limit": limit})

    async def rows(self, status: OutboxStatus | None, *, limit: int) -> list[OutboxRow]:
        found = await self.db.fetchall(self.q.rows, {"status": status, "limit": limit})
        return [_outbox_row(r) for r in found]


def _fence(claimed: ClaimedEvent, worker: str) -> dict[str, Any]:
    return {"seq": claimed.seq, "worker": worker, "epoch": claimed.epoch}


async def outbox_rows(
    db: Database, status: OutboxStatus | str | None = None, *, limit: int = 1000
) -> list[OutboxRow]:
    """The outbox's rows (oldest first), optionally only those with ``status``."""
    st = None if status is None else OutboxStatus(status)
    return await OutboxStore(db).rows(st, limit=limit)
