"""What a workflow gets back from ``wait_event`` and ``receive``. Frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReceivedEvent(Generic[T]):
    """A CloudEvent delivered to a waiting workflow."""

    type: str
    source: str
    id: str
    data: T
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReceivedMessage(Generic[T]):
    """A channel message delivered to a workflow."""

    id: int
    channel: str
    data: T
    metadata: dict[str, Any]
    target: str | None
    published_at: datetime
