"""CloudEvents 1.0 over HTTP, sans-IO: (headers, body bytes) in, a validated value out.

The mode is chosen by Content-Type (HTTP binding section 3): ``application/cloudevents+json``
is structured mode, any other type is binary mode (attributes in ``ce-*`` headers, the body is
the data). The ``cloudevents`` package (2.x, ``cloudevents.core``) supplies the v1.0 attribute
model and media types; its HTTP readers are not used because they fill in a missing ``id``,
``specversion`` and ``time``, quietly turn an unparsable JSON body into a string and accept
``NaN``. So the contract is checked here, strictly, and every failure is a :class:`BadEvent`
naming the problem. No I/O, no trio.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

import orjson
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.spec import SPECVERSION_V1_0
from cloudevents.core.v1.event import CloudEvent

from .._cloudevent_rules import EXTENSION_NAME, INT32, forbidden_char
from .._event_types import Event

TARGET_EXTENSION: Final = "romancyinstanceid"
"""Extension attribute that routes an event to one workflow instance."""

STRUCTURED_TYPE: Final = JSONFormat.CONTENT_TYPE  # application/cloudevents+json
BATCH_TYPE: Final = "application/cloudevents-batch+json"
_REQUIRED: Final = ("id", "source", "type")
_OPTIONAL: Final = ("subject", "datacontenttype", "dataschema")
_CORE: Final = frozenset((*_REQUIRED, *_OPTIONAL, "specversion", "time"))
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)


class BadEvent(ValueError):
    """The request does not carry a valid CloudEvent. ``status``: 400, or 415 for a format
    this server does not take."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


ParsedEvent = Event
"""What parsing yields: the App's own ``Event`` value, every CloudEvents check passed."""


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``'Application/JSON; charset=UTF-8'`` -> ``('application/json', {'charset': 'utf-8'})``."""
    if not content_type:
        return "", {}
    head, *params = content_type.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"').lower()
    return head.strip().lower(), parsed


def is_json_type(content_type: str | None) -> bool:
    """``application/json``, ``text/json`` and any ``+json`` suffix, parameters allowed."""
    mtype, _ = media_type(content_type)
    return JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(mtype) is not None


INT_RANGE: Final = range(-(2**63), 2**64)
"""Integers a JSON value may hold: what is stored and read back exactly (orjson's range)."""


def decode_json(body: bytes, what: str) -> Any:
    """Strict JSON (no NaN, UTF-8 only, integers within `INT_RANGE`), or :class:`BadEvent`.

    Strings may hold U+0000: values are stored as JSON text, where it is the escape
    ``\\u0000`` (ASCII), which every dialect's text column keeps exactly."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"{what} is not valid JSON: {exc}") from None
    if _has_float(value):  # orjson reads an integer beyond 64 bits as a float: find out
        _check_integers(body, what)
    return value


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _check_integers(body: bytes, what: str) -> None:
    """Raise :class:`BadEvent` for the first integer literal outside `INT_RANGE` (it would
    otherwise be kept only approximately, as a float)."""

    def exact(literal: str) -> int:
        number = int(literal)
        if number not in INT_RANGE:
            shown = literal if len(literal) <= 40 else f"{literal[:20]}...({len(literal)} digits)"
            raise BadEvent(
                f"{what} holds the integer {shown}, outside the range kept exactly "
                f"(-2**63 to 2**64-1); send it as a string"
            )
        return number

    try:
        json.loads(body, parse_int=exact)
    except ValueError as exc:  # BadEvent, or more digits than Python converts
        if isinstance(exc, BadEvent):
            raise
        raise BadEvent(f"{what} holds an integer that cannot be read exactly: {exc}") from None


def parse_http(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> ParsedEvent:
    """Parse one CloudEvent from an HTTP request's raw (ASGI) headers and complete body."""
    content_type = None
    for name, value in headers:
        if name.lower() == b"content-type":
            content_type = value.decode("latin-1")
    mtype, params = media_type(content_type)
    if mtype == STRUCTURED_TYPE:
        charset = params.get("charset", "utf-8")
        if charset not in ("utf-8", "utf8"):
            raise BadEvent(f"structured mode needs UTF-8, got charset={charset}", status=415)
        return parse_structured(body)
    if mtype.startswith("application/cloudevents"):
        raise BadEvent(
            f"unsupported CloudEvents format {mtype!r}: use {STRUCTURED_TYPE} (structured "
            f"mode), {BATCH_TYPE} (batched mode) or binary mode",
            status=415,
        )
    return parse_binary(headers, body, content_type)


def parse_structured(body: bytes) -> ParsedEvent:
    """Structured mode: the whole event is a JSON object in the body (JSON event format)."""
    obj = decode_json(body, "structured-mode body")
    if not isinstance(obj, dict):
        raise BadEvent(f"structured-mode body must be a JSON object, got {_json_kind(obj)}")
    return from_json_event(obj)


def from_json_event(obj: dict[str, Any]) -> ParsedEvent:
    """One event in the JSON event format, already decoded (structured mode, batch item)."""
    attrs = {k: v for k, v in obj.items() if v is not None}  # JSON null means "absent"
    has_data, has_b64 = "data" in attrs, "data_base64" in attrs
    if has_data and has_b64:
        raise BadEvent("event has both 'data' and 'data_base64'; send at most one")
    data = attrs.pop("data", None)
    if has_b64:
        encoded = attrs.pop("data_base64")
        if not isinstance(encoded, str):
            raise BadEvent("'data_base64' must be a string")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("'data_base64' is not valid base64") from None
    return from_attributes(attrs, data)


def parse_binary(
    headers: Iterable[tuple[bytes, bytes]], body: bytes, content_type: str | None
) -> ParsedEvent:
    """Binary mode: attributes in percent-encoded ``ce-*`` headers; the body is the data,
    JSON-decoded when Content-Type says JSON, otherwise kept as bytes."""
    attrs: dict[str, Any] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if not name.startswith("ce-"):
            continue
        attr = name[3:]
        if attr in attrs:
            raise BadEvent(f"header {name!r} appears more than once")
        if attr == "datacontenttype":
            raise BadEvent("in binary mode datacontenttype is the Content-Type header, not ce-")
        text = unquote_header(name, raw_value.decode("latin-1"))
        try:
            attrs[attr] = unquote(text, errors="strict")
        except UnicodeDecodeError:
            raise BadEvent(f"header {name!r} is not percent-encoded UTF-8") from None
    if not attrs:
        raise BadEvent(
            "no CloudEvent found: send Content-Type: application/cloudevents+json "
            "(structured mode) or ce-specversion, ce-id, ce-source and ce-type headers "
            "(binary mode)"
        )
    if content_type:
        attrs["datacontenttype"] = content_type
    data: Any = None
    if body:
        data = decode_json(body, "event data") if is_json_type(content_type) else body
    return from_attributes(attrs, data)


def unquote_header(name: str, value: str) -> str:
    """HTTP binding 3.1.3.2: a header value in quoted-string form (RFC 7230 3.2.6) is first
    unquoted - the DQUOTEs removed, each ``\\x`` quoted-pair turned into ``x`` - and only then
    percent-decoded. Any other value is returned as it is."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    out: list[str] = []
    chars = iter(value[1:-1])
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise BadEvent(f"header {name!r}: quoted string ends in a lone backslash")
            out.append(escaped)
        elif char == '"':
            raise BadEvent(f"header {name!r}: quoted string has an unescaped '\"' inside")
        else:
            out.append(char)
    return "".join(out)


def from_json_api(obj: Any, *, new_id: str | None = None) -> ParsedEvent:
    """The plain JSON form of ``POST /events``: ``{"type", "source", "id"?, "data"?,
    "subject"?, "instance_id"?}``; a missing id becomes ``new_id`` (default: a random uuid)."""
    if not isinstance(obj, dict):
        raise BadEvent(f"body must be a JSON object, got {_json_kind(obj)}")
    allowed = {"type", "source", "id", "data", "subject", "instance_id"}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadEvent(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    attrs = {k: v for k, v in obj.items() if v is not None and k not in ("data", "instance_id")}
    attrs["specversion"] = SPECVERSION_V1_0
    attrs.setdefault("id", new_id or uuid.uuid4().hex)
    if obj.get("instance_id") is not None:
        attrs[TARGET_EXTENSION] = obj["instance_id"]
    return from_attributes(attrs, obj.get("data"))


def from_attributes(attrs: dict[str, Any], data: Any) -> ParsedEvent:
    """Check decoded attributes against the CloudEvents 1.0 contract and build the value."""
    specversion = attrs.get("specversion")
    if specversion is None:
        raise BadEvent("missing required attribute 'specversion'")
    if specversion != SPECVERSION_V1_0:
        raise BadEvent(f"unsupported specversion {specversion!r}: must be {SPECVERSION_V1_0!r}")
    for name in _REQUIRED:
        if name not in attrs:
            raise BadEvent(f"missing required attribute {name!r}")
    for name in (*_REQUIRED, *_OPTIONAL):
        if name in attrs:
            _check_string(name, attrs[name])
    when = _parse_time(attrs["time"]) if "time" in attrs else None
    extensions: dict[str, str | int | bool] = {}
    for name, value in attrs.items():
        if name in _CORE:
            continue
        if name == "data" or not EXTENSION_NAME.fullmatch(name):
            raise BadEvent(
                f"invalid extension attribute name {name!r}: must be 1-20 lowercase "
                "letters or digits, and not 'data'"
            )
        extensions[name] = _check_extension(name, value)
    target = extensions.pop(TARGET_EXTENSION, None)
    if target is not None and not isinstance(target, str):
        raise BadEvent(f"extension {TARGET_EXTENSION!r} must be a string instance id")
    _cross_check(attrs, when, data)
    return ParsedEvent(
        type=attrs["type"],
        source=attrs["source"],
        id=attrs["id"],
        data=data,
        subject=attrs.get("subject"),
        time=when,
        datacontenttype=attrs.get("datacontenttype"),
        dataschema=attrs.get("dataschema"),
        extensions=extensions,
        target_instance_id=target,
    )


def _check_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadEvent(f"attribute {name!r} must be a string, got {_json_kind(value)}")
    if not value:
        raise BadEvent(f"attribute {name!r} must not be empty")
    bad = forbidden_char(value)
    if bad is not None:
        raise BadEvent(f"attribute {name!r} contains the control or non-character {bad}")
    return value


def _check_extension(name: str, value: Any) -> str | int | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value not in INT32:
            raise BadEvent(f"extension {name!r}: integer {value} is outside the 32-bit range")
        return value
    if isinstance(value, str):
        return _check_string(name, value)
    raise BadEvent(
        f"extension {name!r} must be a string, integer or boolean, got {_json_kind(value)}"
    )


def _parse_time(value: Any) -> datetime:
    text = _check_string("time", value)
    if not _RFC3339.fullmatch(text):
        raise BadEvent(
            f"attribute 'time' {text!r} is not an RFC 3339 timestamp with an offset "
            "(e.g. 2024-05-01T12:00:00Z)"
        )
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise BadEvent(f"attribute 'time' {text!r} is not a valid date/time: {exc}") from None


def _cross_check(attrs: dict[str, Any], when: datetime | None, data: Any) -> None:
    """Let the ``cloudevents`` package's v1.0 model validate too (it must agree with us)."""
    attributes = dict(attrs)
    if when is not None:
        attributes["time"] = when
    try:
        CloudEvent(attributes, data)
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise BadEvent(f"invalid CloudEvent: {exc}") from None


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
