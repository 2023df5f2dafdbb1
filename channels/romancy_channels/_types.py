"""Values and errors of the channel engine: frozen, comparable, free of I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class ChannelMode(enum.StrEnum):
    """How a channel delivers. Locked by the channel's first subscription."""

    BROADCAST = "broadcast"
    """Every subscriber receives every message published after it subscribed, in order."""
    COMPETING = "competing"
    """Each message goes to exactly one subscriber (a work queue)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, as a subscriber receives it."""

    id: int
    """Unique and increasing in commit order within a channel (not dense: ids are global)."""
    channel: str
    data: Any
    """The decoded JSON value that was published."""
    metadata: dict[str, Any]
    target: str | None
    """The only subscriber that may receive this message (``send_to``), or ``None``."""
    published_at: float
    """Seconds since the epoch, as given by the publisher."""

    def to_json(self) -> dict[str, Any]:
        """The stable wire form shown to external consumers (e.g. over a websocket)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "data": self.data,
            "metadata": self.metadata,
            "target": self.target,
            "published_at": rfc3339(self.published_at),
        }


def rfc3339(timestamp: float) -> str:
    """``timestamp`` as an RFC 3339 UTC string with microseconds, e.g. ``...T12:00:00.000000Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class ChannelError(ValueError):
    """A channel operation was misused: invalid name or payload, wrong mode, not subscribed."""


class ChannelModeError(ChannelError):
    """A subscription asked for another mode than the one the channel is locked to."""

    def __init__(self, channel: str, locked: ChannelMode, requested: ChannelMode) -> None:
        super().__init__(
            f"channel {channel!r} is locked to mode {locked.value!r} by its first subscription; "
            f"cannot subscribe in mode {requested.value!r}"
        )
        self.channel = channel
        self.locked = locked
        self.requested = requested

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.channel, self.locked, self.requested))
