"""CloudEvents HTTP binding, sans-IO: every way an event can be wrong gets a BadEvent naming it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from romancy_trio.asgi._cloudevents import (
    BadEvent,
    ParsedEvent,
    from_json_api,
    is_json_type,
    parse_http,
)

BASE = {"specversion": "1.0", "id": "e-1", "source": "/orders", "type": "order.created"}
STRUCTURED = [(b"content-type", b"application/cloudevents+json")]


def structured(**attrs: Any) -> ParsedEvent:
    body = {**BASE, **attrs}
    return parse_http(STRUCTURED, json.dumps(body).encode())


def binary(body: bytes = b"", content_type: str | None = None, **attrs: str) -> ParsedEvent:
    headers = [(f"ce-{k}".encode(), v.encode()) for k, v in {**BASE, **attrs}.items()]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    return parse_http(headers, body)


def bad(fn: Any, *args: Any, **kwargs: Any) -> BadEvent:
    with pytest.raises(BadEvent) as info:
        fn(*args, **kwargs)
    return info.value


def test_structured_event_with_every_attribute() -> None:
    ev = structured(
        time="2024-05-01T12:30:00.123+02:00",
        subject="order-7",
        dataschema="https://example.com/schema",
        datacontenttype="application/json",
        data={"cents": 42, "items": ["a", "b"]},
        region="eu1",
        priority=3,
        urgent=True,
        romancyinstanceid="wf-1",
    )
    assert ev == ParsedEvent(
        type="order.created",
        source="/orders",
        id="e-1",
        data={"cents": 42, "items": ["a", "b"]},
        subject="order-7",
        time=datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=timezone(timedelta(hours=2))),
        datacontenttype="application/json",
        dataschema="https://example.com/schema",
        extensions={"region": "eu1", "priority": 3, "urgent": True},
        target_instance_id="wf-1",
    )


def test_structured_mode_accepts_charset_and_null_means_absent() -> None:
    body = json.dumps({**BASE, "subject": None, "data": None}).encode()
    headers = [(b"Content-Type", b"application/cloudevents+json; charset=UTF-8")]
    ev = parse_http(headers, body)
    assert ev.subject is None and ev.data is None


def test_structured_data_base64_is_bytes_and_may_hold_nul() -> None:
    ev = structured(data_base64=base64.b64encode(b"\x00\x01bin").decode())
    assert ev.data == b"\x00\x01bin"
    assert "both" in str(bad(structured, data="x", data_base64="AA=="))
    assert "base64" in str(bad(structured, data_base64="%%%"))


def test_structured_ignores_ce_headers() -> None:
    headers = [*STRUCTURED, (b"ce-id", b"from-header")]
    assert parse_http(headers, json.dumps(BASE).encode()).id == "e-1"


def test_binary_mode_json_data_is_decoded() -> None:
    ev = binary(b'{"cents": 1}', "application/json; charset=utf-8", subject="s%C3%A9")
    assert ev.data == {"cents": 1}
    assert ev.subject == "s\u00e9"  # percent-decoded UTF-8
    assert ev.datacontenttype == "application/json; charset=utf-8"
    assert binary(b"[1]", "application/vnd.thing+json").data == [1]


def test_binary_mode_other_data_stays_bytes() -> None:
    assert binary(b"\x00\xffraw", "application/octet-stream").data == b"\x00\xffraw"
    assert binary(b"hello", "text/plain").data == b"hello"
    assert binary(b"no type").data == b"no type"
    assert binary(b"", "application/json").data is None


def test_binary_mode_time_and_extensions() -> None:
    ev = binary(time="2024-01-02T03:04:05Z", traceparent="00-abc")
    assert ev.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ev.extensions == {"traceparent": "00-abc"}


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_named(missing: str) -> None:
    body = {k: v for k, v in BASE.items() if k != missing}
    err = bad(parse_http, STRUCTURED, json.dumps(body).encode())
    assert err.status == 400 and f"'{missing}'" in str(err)
    headers = [(f"ce-{k}".encode(), v.encode()) for k, v in body.items()]
    assert f"'{missing}'" in str(bad(parse_http, headers, b""))


@pytest.mark.parametrize("version", ["0.3", "1", "1.0.0", "2.0"])
def test_specversion_must_be_exactly_1_0(version: str) -> None:
    assert "specversion" in str(bad(structured, specversion=version))
    assert "specversion" in str(bad(binary, specversion=version))


def test_required_attributes_must_be_non_empty_strings() -> None:
    assert "'id' must not be empty" in str(bad(structured, id=""))
    assert "'source' must be a string" in str(bad(structured, source=5))
    assert "'type' must be a string" in str(bad(structured, type=["x"]))
    assert "'subject' must not be empty" in str(bad(structured, subject=""))


@pytest.mark.parametrize(
    "when",
    [
        "2024-05-01T12:00:00",  # no offset
        "2024-05-01",  # date only
        "2024-05-01 12:00:00Z",  # space separator
        "20240501T120000Z",  # ISO basic format
        "2024-13-01T12:00:00Z",  # month 13
        "2024-02-30T12:00:00Z",  # no such day
        "yesterday",
        "",
    ],
)
def test_time_must_be_rfc3339_with_offset(when: str) -> None:
    assert "'time'" in str(bad(structured, time=when))
    assert "'time'" in str(bad(binary, time=when))


def test_time_lowercase_t_z_and_nanoseconds_are_fine() -> None:
    ev = structured(time="2024-05-01t12:00:00.123456789z")
    assert ev.time == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("name", ["Upper", "with-dash", "under_score", "a" * 21, "\u00e9t\u00e9"])
def test_extension_names_are_lowercase_alphanumeric_at_most_20(name: str) -> None:
    assert "extension attribute name" in str(bad(structured, **{name: "v"}))


def test_binary_extension_name_checked_too() -> None:
    headers = [(f"ce-{k}".encode(), v.encode()) for k, v in BASE.items()]
    for name in (b"x" * 21, b"data", b"data_base64"):
        with_ext = [*headers, (b"ce-" + name, b"v")]
        assert "extension attribute name" in str(bad(parse_http, with_ext, b""))


def test_extension_values_string_int32_or_bool() -> None:
    assert "32-bit" in str(bad(structured, big=2**31))
    assert "string, integer or boolean" in str(bad(structured, obj={"a": 1}))
    assert "string, integer or boolean" in str(bad(structured, fl=1.5))
    assert "must be a string instance id" in str(bad(structured, romancyinstanceid=7))


@pytest.mark.parametrize("char", ["\x00", "\x01", "\n", "\x7f", "\x85", "\ufffe"])
def test_control_characters_in_attributes_are_rejected(char: str) -> None:
    err = bad(structured, subject=f"a{char}b")
    assert f"U+{ord(char):04X}" in str(err)
    assert "'id'" in str(bad(structured, id=f"x{char}"))
    assert "'region'" in str(bad(structured, region=f"x{char}"))


def test_control_characters_in_binary_headers_after_percent_decoding() -> None:
    assert "U+0000" in str(bad(binary, source="/a%00b"))
    assert "U+000A" in str(bad(binary, subject="line%0Abreak"))
    assert "percent-encoded UTF-8" in str(bad(binary, subject="%FF"))


def test_nul_in_json_data_is_kept_exactly() -> None:
    assert structured(data={"note": "a\x00b"}).data == {"note": "a\x00b"}
    assert structured(data={"k\x00": 1}).data == {"k\x00": 1}
    assert binary(b'["\\u0000"]', "application/json").data == ["\x00"]


def test_invalid_json_is_named() -> None:
    assert "not valid JSON" in str(bad(parse_http, STRUCTURED, b"{nope"))
    assert "not valid JSON" in str(bad(parse_http, STRUCTURED, b"\xff\xfe"))
    assert "not valid JSON" in str(bad(parse_http, STRUCTURED, b'{"a": NaN}'))
    assert "must be a JSON object" in str(bad(parse_http, STRUCTURED, b"[1]"))
    assert "event data is not valid JSON" in str(bad(binary, b"{nope", "application/json"))


def test_unsupported_formats_are_415() -> None:
    for ctype in (b"application/cloudevents-batch+json", b"application/cloudevents+avro"):
        assert bad(parse_http, [(b"content-type", ctype)], b"[]").status == 415
    latin = [(b"content-type", b"application/cloudevents+json; charset=latin-1")]
    assert bad(parse_http, latin, json.dumps(BASE).encode()).status == 415


def test_no_event_at_all() -> None:
    err = bad(parse_http, [(b"content-type", b"application/json")], b"{}")
    assert "no CloudEvent found" in str(err)


def test_binary_header_rules() -> None:
    headers = [(f"ce-{k}".encode(), v.encode()) for k, v in BASE.items()]
    assert "more than once" in str(bad(parse_http, [*headers, (b"ce-id", b"2")], b""))
    ctype = [*headers, (b"ce-datacontenttype", b"text/plain")]
    assert "Content-Type header" in str(bad(parse_http, ctype, b""))


def test_json_api_form() -> None:
    ev = from_json_api(
        {"type": "t", "source": "s", "data": {"a": 1}, "instance_id": "wf-9"}, new_id="fixed"
    )
    assert (ev.id, ev.type, ev.source, ev.data, ev.target_instance_id) == (
        "fixed",
        "t",
        "s",
        {"a": 1},
        "wf-9",
    )
    assert len(from_json_api({"type": "t", "source": "s"}).id) == 32
    assert "unknown field" in str(bad(from_json_api, {"type": "t", "source": "s", "x": 1}))
    assert "'type'" in str(bad(from_json_api, {"source": "s"}))
    assert from_json_api({"type": "t", "source": "s", "data": "\x00"}).data == "\x00"
    assert "JSON object" in str(bad(from_json_api, [1]))


def test_helpers() -> None:
    assert is_json_type("application/json")
    assert is_json_type("Application/JSON; charset=utf-8")
    assert is_json_type("text/json") and is_json_type("application/ld+json")
    assert not is_json_type("text/plain") and not is_json_type(None)
