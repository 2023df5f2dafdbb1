"""Values the store returns. Frozen; statuses are a StrEnum."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .._errors import LeaseLostError
from .._replay import ErrorInfo, HistoryEvent
from ..hooks import frozen_map


@dataclass(frozen=True, slots=True)
class Topics:
    """NOTIFY channel names of one app. LISTEN/NOTIFY is database-wide, so they carry the
    schema: apps in other schemas of the same database never wake each other."""

    work: str
    done: str
    cancel: str
    channel: str
    outbox: str
    members: str

    @classmethod
    def for_schema(cls, schema: str) -> Topics:
        tag = schema if len(schema) <= 36 and schema.isidentifier() else (
            hashlib.sha1(schema.encode()).hexdigest()[:12])
        return cls(f"romancy_work_{tag}", f"romancy_done_{tag}", f"romancy_cancel_{tag}",
                   f"romancy_channel_{tag}", f"romancy_outbox_{tag}",
                   f"romancy_members_{tag}")

    def all(self) -> tuple[str, ...]:
        return (self.work, self.done, self.cancel, self.channel, self.outbox, self.members)

    def done_for(self, worker_id: str) -> str:
        """The done channel of the process of ``worker_id`` alone: where a finish elsewhere
        tells the one process that waits for that instance (``watcher``), so no other process
        is woken (issue #22; PostgreSQL's finish builds the same name in SQL). Its hub
        delivers it as ``done``. At most 63 bytes, as a channel name must be."""
        digest = hashlib.md5(worker_id.encode(), usedforsecurity=False).hexdigest()
        return f"{self.done}_{digest[:12]}"


class WorkflowStatus(StrEnum):
    QUEUED = "queued"
    """Started on a queue, not admitted yet (see ``App.enqueue``)."""
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """What the database says about one workflow instance."""

    instance_id: str
    workflow_name: str
    status: WorkflowStatus
    input: Any
    result: Any
    error: ErrorInfo | None
    run_no: int
    lease_owner: str | None
    lease_epoch: int
    created_at: datetime
    updated_at: datetime
    parent_instance_id: str | None = None
    """The instance that started this one as a child workflow (None: none)."""
    counters: Mapping[str, float] = field(default_factory=dict)
    """What the instance's activities counted (`ActivityContext.count`), summed over all its
    runs (``recur`` ones too); filled by `App.status`, empty elsewhere."""
    code_version: str | None = None
    """The code version it started on (`AppConfig.code_version`): only workers of this or a
    compatible version resume it. None: started before versions were recorded (any worker)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of one instance by one worker; ``epoch`` fences out every earlier owner."""

    instance_id: str
    worker_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Existing:
    """What `Store.create_instance` found instead of creating: the id's workflow and the
    input it was started with (its first run's, if it has continued as new since)."""

    workflow_name: str
    input_json: str


@dataclass(frozen=True, slots=True)
class Claimed:
    lease: Lease
    workflow_name: str
    input_json: str
    run_no: int
    run_started_at: float
    cancel_requested: bool = False
    fresh: bool = False
    """Created by this process a moment ago, or claimed for the first time ever (lease epoch
    1): it has no history to load."""
    history: tuple[HistoryEvent, ...] | None = None
    """Its current run's history, when the claim brought it along (else load it)."""
    previous_owner: str | None = None
    """The worker whose expired lease this claim took over (None: it was free; always None
    on SQLite)."""
    attributes: Mapping[str, str] = field(default_factory=frozen_map)
    """The instance attributes given at start (read-only)."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_no: int
    continued_from: int | None
    started_at: float
    ended_at: float | None


def lease_lost(lease: Lease) -> LeaseLostError:
    return LeaseLostError(
        f"worker {lease.worker_id!r} no longer holds instance "
        f"{lease.instance_id!r} at epoch {lease.epoch}"
    )
