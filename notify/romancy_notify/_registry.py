"""The sans-IO fan-out registry: which watches a notification wakes, and what each one is told.

No Trio, no I/O: the hub feeds it ``(topic, payload)`` pairs and learns which watches became
ready; waking them is the hub's job. Everything a caller can observe is decided here:

- A watch is either *keyed* (``key`` set: woken by that exact payload) or a *wildcard*
  (``key=None``: woken by every payload of its topic, and told which payloads arrived).
- Coalescing: between two waits a watch keeps one small *set* of payloads; repeats fold into
  it, so a burst of N notifications is one wakeup. A keyed watch's set is at most ``{key}``.
- Bounded memory: a wildcard watch keeps at most ``max_pending_keys`` payloads. One more
  clears the set and marks a *gap* (and counts an overflow): the caller must rescan.
- Gap: `Registry.gap_all` marks every watch (the listener reconnected, so notifications may
  have been lost); `Registry.gap_topic` marks the watches of one topic (heard again after
  `Hub.set_heard` had stopped hearing it). While a gap is pending a watch collects no
  payloads: ``Wakeup.gap`` means "``keys`` is incomplete, rescan everything", so they would
  be of no use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_TOPIC_BYTES",
    "Registry",
    "Wakeup",
    "WatchState",
    "validate_payload",
    "validate_topic",
]

MAX_TOPIC_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
MAX_PAYLOAD_BYTES = 7999  # pg_notify payloads must be shorter than 8000 bytes
_TOPIC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

H = TypeVar("H")


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it can be a LISTEN channel name here, else raise `ValueError`."""
    if not isinstance(topic, str):
        raise ValueError(f"notify topic must be a str, not {type(topic).__name__}")
    if not _TOPIC_RE.fullmatch(topic):
        raise ValueError(
            f"invalid notify topic {topic!r}: use ASCII letters, digits and '_', "
            "not starting with a digit"
        )
    if len(topic) > MAX_TOPIC_BYTES:
        raise ValueError(f"notify topic {topic!r} is longer than {MAX_TOPIC_BYTES} bytes")
    return topic


def validate_payload(payload: object) -> str:
    """Return ``payload`` if PostgreSQL can carry it as a NOTIFY payload, else `ValueError`."""
    if not isinstance(payload, str):
        raise ValueError(f"notify payload must be a str, not {type(payload).__name__}")
    if "\x00" in payload:
        raise ValueError("notify payload must not contain NUL (U+0000)")
    try:
        size = len(payload.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"notify payload is not valid UTF-8 text: {exc.reason}") from None
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"notify payload is {size} bytes in UTF-8, more than {MAX_PAYLOAD_BYTES}: "
            "notify a small key, not the data"
        )
    return payload


@dataclass(frozen=True, slots=True)
class Wakeup:
    """Why a `wait` returned. A hint: re-read the rows either way.

    ``keys``: payloads received since the last wakeup (a keyed watch: ``{key}``); empty when
    ``gap`` is set. ``gap``: notifications may have been lost, rescan everything.
    ``fallback``: the fallback timer fired with nothing received. ``timed_out``: the caller's
    own timeout elapsed with nothing received.
    """

    keys: frozenset[str] = frozenset()
    gap: bool = False
    fallback: bool = False
    timed_out: bool = False


class WatchState(Generic[H]):
    """One registered watch: its pending payloads and gap flag, and the caller's ``handle``."""

    __slots__ = ("_gap", "_keys", "_registered", "handle", "key", "quiet", "topic")

    def __init__(self, topic: str, key: str | None, handle: H) -> None:
        self.topic = topic
        self.key = key
        self.handle = handle
        self.quiet: Callable[[str], bool] | None = None
        """A wildcard watch's: a payload it returns True for is taken without making the
        watch ready (see `Watch.set_quiet`)."""
        self._keys: set[str] = set()
        self._gap = False
        self._registered = True

    @property
    def ready(self) -> bool:
        """True if a `Registry.take` would return a wakeup."""
        return self._gap or bool(self._keys)

    @property
    def registered(self) -> bool:
        return self._registered

    def __repr__(self) -> str:
        return f"<WatchState {self.topic}:{self.key!r} ready={self.ready}>"


class Registry(Generic[H]):
    """Topic/key -> watches, with per-watch pending state and counters."""

    def __init__(self, topics: Iterable[str], max_pending_keys: int) -> None:
        if isinstance(topics, str):
            raise ValueError("topics must be a collection of topic names, not one str")
        self.topics = frozenset(validate_topic(t) for t in topics)
        if not self.topics:
            raise ValueError("a notify hub needs at least one topic")
        if max_pending_keys < 1:
            raise ValueError("max_pending_keys must be >= 1")
        self.max_pending_keys = max_pending_keys
        self._keyed: dict[tuple[str, str], set[WatchState[H]]] = {}
        self._wildcard: dict[str, set[WatchState[H]]] = {t: set() for t in self.topics}
        self._count = 0
        self.received = 0  # notifications fed to deliver() for a known topic
        self.delivered = 0  # times a watch went from idle to ready
        self.gaps = 0  # gap_all() calls
        self.overflows = 0  # per-watch pending-set overflows (each also a gap for that watch)

    @property
    def watches(self) -> int:
        """The number of registered watches."""
        return self._count

    def add(self, topic: str, key: str | None, handle: H) -> WatchState[H]:
        """Register a watch on ``topic`` (``key=None``: every payload); it starts idle."""
        validate_topic(topic)
        if topic not in self.topics:
            raise ValueError(
                f"unknown notify topic {topic!r}: this hub listens to {sorted(self.topics)}"
            )
        ws = WatchState(topic, None if key is None else validate_payload(key), handle)
        if key is None:
            self._wildcard[topic].add(ws)
        else:
            self._keyed.setdefault((topic, key), set()).add(ws)
        self._count += 1
        return ws

    def remove(self, ws: WatchState[H]) -> None:
        """Unregister ``ws``; a second call does nothing."""
        if not ws._registered:
            return
        ws._registered = False
        ws._keys.clear()
        if ws.key is None:
            self._wildcard[ws.topic].discard(ws)
        else:
            index = (ws.topic, ws.key)
            group = self._keyed[index]
            group.discard(ws)
            if not group:
                del self._keyed[index]
        self._count -= 1

    def deliver(self, topic: str, payload: str) -> list[H]:
        """Record a notification; return the handles of the watches it made ready.

        A topic this registry does not know is ignored (the hub never LISTENs to one).
        """
        wildcard = self._wildcard.get(topic)
        if wildcard is None:
            return []
        self.received += 1
        woken: list[H] = []
        for ws in self._keyed.get((topic, payload), ()):
            if not ws.ready:
                ws._keys.add(payload)
                woken.append(ws.handle)
        for ws in wildcard:
            if ws._gap or payload in ws._keys:
                continue  # a gap swallows payloads; a repeat coalesces
            if ws.quiet is not None and ws.quiet(payload):
                continue  # taken by the watch's owner without waking it
            if len(ws._keys) >= self.max_pending_keys:
                ws._keys.clear()
                ws._gap = True
                self.overflows += 1
                continue  # already ready: it held keys
            if not ws._keys:
                woken.append(ws.handle)
            ws._keys.add(payload)
        self.delivered += len(woken)
        return woken

    def gap_all(self) -> list[H]:
        """Mark a gap on every watch; return the handles of those that were idle."""
        self.gaps += 1
        return self._mark_gap(self._all())

    def gap_topic(self, topic: str) -> list[H]:
        """Mark a gap on every watch of ``topic``; return the handles of those that were idle.

        Not counted in ``gaps`` (hub-wide gaps)."""
        keyed = [ws for (t, _), group in self._keyed.items() if t == topic for ws in group]
        return self._mark_gap([*keyed, *self._wildcard.get(topic, ())])

    def take(self, ws: WatchState[H]) -> Wakeup | None:
        """Consume the pending state of ``ws``: a `Wakeup`, or None if it is idle."""
        if ws._gap:
            ws._gap = False
            ws._keys.clear()
            return Wakeup(gap=True)
        if ws._keys:
            keys = frozenset(ws._keys)
            ws._keys.clear()
            return Wakeup(keys=keys)
        return None

    def clear(self) -> list[H]:
        """Unregister every watch; return their handles (e.g. to wake them when closing)."""
        handles = [ws.handle for ws in self._all()]
        for ws in list(self._all()):
            self.remove(ws)
        return handles

    def _mark_gap(self, watches: Iterable[WatchState[H]]) -> list[H]:
        woken: list[H] = []
        for ws in watches:
            if not ws.ready:
                woken.append(ws.handle)
            ws._gap = True
            ws._keys.clear()
        self.delivered += len(woken)
        return woken

    def _all(self) -> Iterable[WatchState[H]]:
        for group in self._keyed.values():
            yield from group
        for group in self._wildcard.values():
            yield from group
