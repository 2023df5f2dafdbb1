"""The sans-IO registry: plain functions, no event loop."""

from __future__ import annotations

import pytest

from romancy_notify._registry import (
    MAX_PAYLOAD_BYTES,
    Registry,
    Wakeup,
    validate_payload,
    validate_topic,
)


def make(max_pending_keys: int = 4) -> Registry[str]:
    return Registry(["work", "done"], max_pending_keys)


def test_keyed_watch_wakes_on_its_key_only() -> None:
    r = make()
    ws = r.add("done", "a", "h")
    assert not ws.ready
    assert r.deliver("done", "b") == []
    assert r.deliver("work", "a") == []
    assert r.take(ws) is None
    assert r.deliver("done", "a") == ["h"]
    assert ws.ready
    assert r.take(ws) == Wakeup(keys=frozenset({"a"}))
    assert r.take(ws) is None


def test_keyed_watch_coalesces_repeats() -> None:
    r = make()
    ws = r.add("done", "a", "h")
    assert r.deliver("done", "a") == ["h"]
    assert r.deliver("done", "a") == []  # already ready: no second wakeup
    assert r.take(ws) == Wakeup(keys=frozenset({"a"}))
    assert r.delivered == 1
    assert r.received == 2


def test_several_watches_on_one_key_all_wake() -> None:
    r = make()
    a = r.add("done", "k", "a")
    b = r.add("done", "k", "b")
    assert sorted(r.deliver("done", "k")) == ["a", "b"]
    assert r.take(a) == r.take(b) == Wakeup(keys=frozenset({"k"}))


def test_wildcard_collects_keys_and_wakes_once() -> None:
    r = make()
    ws = r.add("work", None, "w")
    assert r.deliver("work", "x") == ["w"]
    assert r.deliver("work", "y") == []
    assert r.deliver("work", "x") == []
    assert r.deliver("done", "z") == []
    assert r.take(ws) == Wakeup(keys=frozenset({"x", "y"}))
    assert r.take(ws) is None
    assert r.deliver("work", "y") == ["w"]
    assert r.delivered == 2


def test_keyed_and_wildcard_together() -> None:
    r = make()
    keyed = r.add("work", "x", "k")
    wild = r.add("work", None, "w")
    assert sorted(r.deliver("work", "x")) == ["k", "w"]
    assert r.deliver("work", "y") == []
    assert r.take(keyed) == Wakeup(keys=frozenset({"x"}))
    assert r.take(wild) == Wakeup(keys=frozenset({"x", "y"}))


def test_overflow_clears_keys_and_reports_gap() -> None:
    r = make(max_pending_keys=3)
    ws = r.add("work", None, "w")
    other = r.add("work", None, "o")
    for key in ("a", "b", "c"):
        r.deliver("work", key)
    r.take(other)
    assert r.overflows == 0
    r.deliver("work", "d")  # a fourth distinct key: overflow for ws, not for other
    assert r.overflows == 1
    r.deliver("work", "e")  # during a pending gap nothing is collected, nor overflows
    assert r.overflows == 1
    assert r.take(ws) == Wakeup(gap=True)
    assert r.take(other) == Wakeup(keys=frozenset({"d", "e"}))
    assert sorted(r.deliver("work", "f")) == ["o", "w"]
    assert r.take(ws) == Wakeup(keys=frozenset({"f"}))


def test_repeats_do_not_overflow() -> None:
    r = make(max_pending_keys=2)
    ws = r.add("work", None, "w")
    for _ in range(10):
        r.deliver("work", "a")
        r.deliver("work", "b")
    assert r.overflows == 0
    assert r.take(ws) == Wakeup(keys=frozenset({"a", "b"}))


def test_gap_all_marks_every_watch_and_wakes_idle_ones() -> None:
    r = make()
    idle = r.add("done", "a", "idle")
    busy = r.add("work", None, "busy")
    r.deliver("work", "x")
    assert r.gap_all() == ["idle"]
    assert r.gaps == 1
    assert r.take(idle) == Wakeup(gap=True)
    assert r.take(busy) == Wakeup(gap=True)  # pending keys are superseded by the gap
    assert r.take(idle) is None
    r.deliver("done", "a")  # collected again after the gap was taken
    assert r.take(idle) == Wakeup(keys=frozenset({"a"}))


def test_gap_topic_marks_the_watches_of_that_topic_only() -> None:
    r = make()
    idle = r.add("done", "a", "idle")
    busy = r.add("done", None, "busy")
    other = r.add("work", "a", "other")
    r.deliver("done", "x")
    assert r.gap_topic("done") == ["idle"]
    assert (r.gaps, r.delivered) == (0, 2)  # a topic's gap is not a hub-wide one
    assert r.take(idle) == r.take(busy) == Wakeup(gap=True)
    assert r.take(other) is None
    assert sorted(r.gap_topic("done")) == ["busy", "idle"]  # both idle again


def test_gap_swallows_keys_until_taken() -> None:
    r = make()
    ws = r.add("done", "a", "h")
    assert r.gap_all() == ["h"]
    assert r.deliver("done", "a") == []
    assert r.take(ws) == Wakeup(gap=True)


def test_remove_is_idempotent_and_stops_delivery() -> None:
    r = make()
    ws = r.add("done", "a", "h")
    wild = r.add("work", None, "w")
    assert r.watches == 2
    r.remove(ws)
    r.remove(ws)
    assert not ws.registered
    assert r.watches == 1
    assert r.deliver("done", "a") == []
    assert r.gap_all() == ["w"]
    r.remove(wild)
    assert r.watches == 0
    assert r._keyed == {}


def test_clear_returns_all_handles() -> None:
    r = make()
    r.add("done", "a", "1")
    r.add("done", "a", "2")
    r.add("work", None, "3")
    assert sorted(r.clear()) == ["1", "2", "3"]
    assert r.watches == 0
    assert r.clear() == []


def test_unknown_topic_is_ignored_by_deliver_and_rejected_by_add() -> None:
    r = make()
    assert r.deliver("other", "x") == []
    assert r.received == 0
    with pytest.raises(ValueError, match="unknown notify topic 'other'"):
        r.add("other", None, "h")
    with pytest.raises(ValueError, match="invalid notify topic"):
        r.add("bad topic", None, "h")


def test_statistics_counters() -> None:
    r = make(max_pending_keys=1)
    a = r.add("work", None, "a")
    r.add("done", "k", "b")
    r.deliver("work", "1")
    r.deliver("work", "2")  # overflow for a
    r.deliver("done", "k")
    r.gap_all()
    assert (r.watches, r.received, r.delivered, r.gaps, r.overflows) == (2, 3, 2, 1, 1)
    r.take(a)
    assert r.gap_all() == ["a"]
    assert r.delivered == 3


def test_registry_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        Registry([], 1)
    with pytest.raises(ValueError, match="not one str"):
        Registry("work", 1)
    with pytest.raises(ValueError, match="max_pending_keys"):
        Registry(["work"], 0)
    assert Registry(["work", "work"], 1).topics == frozenset({"work"})


@pytest.mark.parametrize("topic", ["romancy_work", "_x", "A1", "a" * 63])
def test_valid_topics(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("", "invalid"),
        ("1abc", "invalid"),
        ("has space", "invalid"),
        ('quo"te', "invalid"),
        ("semi;colon", "invalid"),
        ("é", "invalid"),
        ("a" * 64, "longer than 63 bytes"),
        (b"bytes", "must be a str"),
    ],
)
def test_invalid_topics(topic: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_topic(topic)


def test_payload_validation() -> None:
    assert validate_payload("") == ""
    assert validate_payload("x" * MAX_PAYLOAD_BYTES) == "x" * MAX_PAYLOAD_BYTES
    assert validate_payload("é" * (MAX_PAYLOAD_BYTES // 2))
    with pytest.raises(ValueError, match="8000 bytes in UTF-8, more than 7999"):
        validate_payload("é" * 4000)
    with pytest.raises(ValueError, match="more than 7999"):
        validate_payload("x" * (MAX_PAYLOAD_BYTES + 1))
    with pytest.raises(ValueError, match="NUL"):
        validate_payload("a\x00b")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        validate_payload("\ud800")
    with pytest.raises(ValueError, match="must be a str"):
        validate_payload(42)


def test_keys_are_validated_like_payloads() -> None:
    r = make()
    with pytest.raises(ValueError, match="NUL"):
        r.add("done", "a\x00", "h")


def test_wakeup_defaults() -> None:
    w = Wakeup()
    assert (w.keys, w.gap, w.fallback, w.timed_out) == (frozenset(), False, False, False)
    with pytest.raises(AttributeError):
        w.gap = True  # type: ignore[misc]
