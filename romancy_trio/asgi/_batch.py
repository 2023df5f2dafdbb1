"""CloudEvents batched mode (HTTP binding 3.3; JSON event format 4): the body is a JSON array
of events in the JSON event format, Content-Type ``application/cloudevents-batch+json``.

Every event is checked before anything is stored; the first bad one is answered 400 naming its
index. Then the whole batch is stored in one transaction (all or nothing) and answered 202 with
one receipt per event, in order. An empty array is a valid (empty) batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import InstanceNotFoundError, InvalidInputError
from .._event_types import EventReceipt
from ._cloudevents import BATCH_TYPE, BadEvent, ParsedEvent, decode_json, from_json_event
from ._cloudevents import media_type as _media_type
from ._http import DEFAULT_MAX_BATCH, HTTPError, Response

if TYPE_CHECKING:
    from .._app import App

class BadBatch(BadEvent):
    """One event of a batch is invalid; ``index`` is its position (0-based)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index} of the batch: {message}")
        self.index = index


def is_batch(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return _media_type(value.decode("latin-1"))[0] == BATCH_TYPE
    return False


def parse_batch(
    headers: Iterable[tuple[bytes, bytes]], body: bytes, *, max_events: int = DEFAULT_MAX_BATCH
) -> list[ParsedEvent]:
    """Sans-IO: every event of a batched-mode request, each checked as a structured event
    and against the App's own rules (attribute lengths), or `BadEvent` / `BadBatch`."""
    for name, value in headers:
        if name.lower() == b"content-type":
            charset = _media_type(value.decode("latin-1"))[1].get("charset", "utf-8")
            if charset not in ("utf-8", "utf8"):
                raise BadEvent(f"batched mode needs UTF-8, got charset={charset}", status=415)
    items = decode_json(body, "batched-mode body")
    if not isinstance(items, list):
        raise BadEvent("batched-mode body must be a JSON array of events")
    if len(items) > max_events:
        raise BadEvent(
            f"batch of {len(items)} events; at most {max_events} per request", status=413
        )
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadBatch(index, "must be a JSON object (an event in the JSON format)")
        try:
            event = from_json_event(item)
            event.validate()
        except BadEvent as exc:
            raise BadBatch(index, exc.message) from None
        except InvalidInputError as exc:
            raise BadBatch(index, str(exc)) from None
        events.append(event)
    return events


def receipt_json(receipt: EventReceipt) -> dict[str, Any]:
    return {
        "id": receipt.event_id,
        "source": receipt.source,
        "duplicate": receipt.duplicate,
        "delivered_to": list(receipt.delivered_to),
    }


async def deliver_batch(app: App, events: Sequence[ParsedEvent]) -> Response:
    """Store the batch atomically, then answer 202 with the receipts."""
    try:
        receipts = await app.send_events(events)
    except InstanceNotFoundError as exc:
        index = next(
            (i for i, e in enumerate(events) if e.target_instance_id == exc.instance_id), None
        )
        where = "" if index is None else f"event {index} of the batch: "
        raise HTTPError(404, f"{where}{exc}; nothing was stored", extra={"index": index}) from None
    return Response(202, {"receipts": [receipt_json(r) for r in receipts]})
