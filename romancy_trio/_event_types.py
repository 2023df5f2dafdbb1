"""Events sent to workflows (CloudEvents attributes + data) and the receipt for sending one."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._cloudevent_rules import INT32, forbidden_char, is_extension_name
from ._errors import InvalidInputError

_MAX_ATTR = 1024


def _check_attr(name: str, value: str | None, *, required: bool) -> None:
    if value is None or value == "":
        if required:
            raise InvalidInputError(f"event attribute {name!r} must be a non-empty string")
        return
    if not isinstance(value, str):
        raise InvalidInputError(f"event attribute {name!r} must be a string")
    if len(value) > _MAX_ATTR:
        raise InvalidInputError(f"event attribute {name!r} is longer than {_MAX_ATTR} characters")
    bad = forbidden_char(value)
    if bad is not None:
        raise InvalidInputError(
            f"event attribute {name!r} contains the control or non-character {bad}")


@dataclass(frozen=True, slots=True)
class Event:
    """A CloudEvent to deliver to waiting workflows. ``(source, id)`` identifies it: sending the
    same pair twice records it once. ``target_instance_id`` routes it to one instance's inbox."""

    type: str
    source: str
    id: str
    data: Any = None
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    extensions: Mapping[str, str | int | bool] = field(default_factory=dict)
    target_instance_id: str | None = None

    def validate(self) -> None:
        for name in ("type", "source", "id"):
            _check_attr(name, getattr(self, name), required=True)
        for name in ("subject", "datacontenttype", "dataschema", "target_instance_id"):
            _check_attr(name, getattr(self, name), required=False)
        if self.time is not None and self.time.tzinfo is None:
            raise InvalidInputError("event attribute 'time' must be timezone-aware")
        for key, value in self.extensions.items():
            if not is_extension_name(key):
                raise InvalidInputError(
                    f"extension attribute name {key!r} must be 1-20 lowercase letters or digits "
                    "and not a core attribute")
            if isinstance(value, str):
                _check_attr(key, value, required=False)
            elif isinstance(value, int) and not isinstance(value, bool) and value not in INT32:
                raise InvalidInputError(f"extension attribute {key!r} must be a 32-bit integer")

    def body(self) -> dict[str, Any]:
        """The JSON recorded in history and handed to the workflow."""
        out: dict[str, Any] = {
            "id": self.id, "source": self.source, "type": self.type, "subject": self.subject,
            "time": self.time.isoformat() if self.time else None,
            "datacontenttype": self.datacontenttype, "dataschema": self.dataschema,
            "extensions": dict(self.extensions)}
        if isinstance(self.data, bytes | bytearray):
            out["data_base64"] = base64.b64encode(bytes(self.data)).decode()
        else:
            out["data"] = self.data
        return out


@dataclass(frozen=True, slots=True)
class EventReceipt:
    event_id: str
    source: str
    duplicate: bool
    """(source, id) had been recorded before: nothing new was stored or delivered."""
    delivered_to: tuple[str, ...]
    """Instances that were waiting for it and now resume."""
