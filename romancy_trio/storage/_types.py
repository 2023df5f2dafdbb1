"""Values the store returns. Frozen; statuses are a StrEnum."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from .._errors import LeaseLostError
from .._replay import ErrorInfo


TOPIC_WORK = "romancy_work"
TOPIC_DONE = "romancy_done"
TOPIC_CANCEL = "romancy_cancel"
TOPICS = (TOPIC_WORK, TOPIC_DONE, TOPIC_CANCEL)


class WorkflowStatus(StrEnum):
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


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of one instance by one worker; ``epoch`` fences out every earlier owner."""

    instance_id: str
    worker_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Claimed:
    lease: Lease
    workflow_name: str
    input_json: str
    run_no: int
    run_started_at: float
    cancel_requested: bool = False
    fresh: bool = False
    """Created by this process a moment ago: it has no history to load."""


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
