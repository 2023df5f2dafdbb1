"""Turn recorded events into what the workflow's ``await`` returns or raises."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .._codec import convert
from .._errors import (
    ActivityFailedError,
    ChannelError,
    EventTimeoutError,
    InvalidInputError,
    ReceiveTimeoutError,
    RetriesExhaustedError,
    WaitTimeoutError,
)
from ._events import ErrorInfo, EventKind, HistoryEvent, WaitKind, type_name
from ._received import ReceivedEvent, ReceivedMessage
from ._requests import ActivityCall, WaitRequest


def activity_error(event: HistoryEvent, name: str | None = None) -> ActivityFailedError:
    info = ErrorInfo.from_json(event.payload)
    attempts = int(event.payload.get("attempts", 1))
    if event.payload.get("exhausted"):
        return RetriesExhaustedError(event.key, info.type, info.message, attempts,
                                     activity_name=name)
    return ActivityFailedError(event.key, info.type, info.message, activity_name=name)


def deliver_activity(calls: Sequence[ActivityCall[Any]], events: Sequence[HistoryEvent]
                     ) -> tuple[list[Any], ActivityFailedError | None]:
    """Results in call order, and the first failure (in call order) if any failed."""
    values: list[Any] = []
    failure: ActivityFailedError | None = None
    for call, event in zip(calls, events, strict=True):
        if event.kind is EventKind.ACTIVITY_FAILED:
            failure = failure or activity_error(event, call.name)
            values.append(None)
            continue
        try:
            values.append(convert(event.payload, call.result_hint, f"result of {event.key}"))
        except InvalidInputError as exc:
            failure = failure or ActivityFailedError(
                event.key, type_name(InvalidInputError), str(exc), activity_name=call.name)
            values.append(None)
    return values, failure


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def deliver_wait(
    event: HistoryEvent, request: WaitRequest[Any]
) -> tuple[Any, BaseException | None]:

    """(value to send, exception to throw) for a wait that history answered."""
    payload = event.payload
    if event.kind is EventKind.TIMER_FIRED:
        return None, None
    if event.kind is EventKind.WAIT_FAILED:
        info = ErrorInfo.from_json(payload)
        return None, ChannelError(f"{info.type}: {info.message}")
    if event.kind is EventKind.WAIT_TIMED_OUT:
        what = f"{request.kind} {request.key!r}"
        error: WaitTimeoutError = (EventTimeoutError(f"an event of type {request.key!r}")
                                   if request.kind is WaitKind.EVENT
                                   else ReceiveTimeoutError(f"a message on {request.key!r}")
                                   if request.kind is WaitKind.CHANNEL else WaitTimeoutError(what))
        return None, error
    raw = (base64.b64decode(payload["data_base64"]) if "data_base64" in payload
           else payload.get("data"))
    try:
        data = convert(raw, request.data_hint, f"data of {event.key}")
    except InvalidInputError as exc:
        return None, exc
    if event.kind is EventKind.EVENT_RECEIVED:
        return ReceivedEvent(
            type=payload["type"], source=payload["source"], id=payload["id"], data=data,
            subject=payload.get("subject"), time=_time(payload.get("time")),
            datacontenttype=payload.get("datacontenttype"), dataschema=payload.get("dataschema"),
            extensions=dict(payload.get("extensions") or {})), None
    if event.kind is EventKind.MESSAGE_RECEIVED:
        return ReceivedMessage(
            id=int(payload["id"]), channel=payload["channel"], data=data,
            metadata=dict(payload.get("metadata") or {}), target=payload.get("target"),
            published_at=_time(payload.get("published_at")) or datetime.fromtimestamp(0, UTC)
        ), None
    raise RuntimeError(f"unexpected event {event.kind} for wait {event.key!r}")
