"""The hub: watches that Trio tasks wait on, fed by a source (PostgreSQL or in-process).

A `Hub` owns a sans-IO `Registry` and wakes parked waiters when it reports watches ready.
Each `Watch.wait` runs its own fallback timer (``fallback_interval`` with +/- jitter from the
hub's `random.Random`), so a waiter re-reads the database even if every notification is lost.
Memory is bounded: per watch one parking lot and one pending set of at most
``max_pending_keys`` payloads; there are no queues.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import trio

from ._config import NotifyConfig
from ._registry import Registry, Wakeup, WatchState, validate_payload, validate_topic

__all__ = [
    "Hub",
    "HubClosed",
    "HubStatistics",
    "NotifyError",
    "SourceLink",
    "Watch",
    "WatchClosed",
]


class NotifyError(Exception):
    """Base class of the errors raised by `notify`."""


class HubClosed(NotifyError):
    """The hub was closed: its watches can no longer be waited on, nor new ones made."""


class WatchClosed(NotifyError):
    """The watch was closed (its ``with`` block left) and can no longer be waited on."""


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A snapshot of a hub's counters.

    ``received``: notifications fed in (from PostgreSQL and `Hub.publish_local`);
    ``delivered``: times a watch went from idle to ready (wakeups set); ``gaps``: hub-wide gaps
    (listener reconnects); ``overflows``: per-watch pending-set overflows (each a gap for that
    watch); ``fallbacks``: waits that ended on the fallback timer; ``listening``: the source is
    connected and LISTENing (always True for an open local hub); ``unheard``: the topics
    `Hub.set_heard` stopped hearing, as the source has applied it (PostgreSQL: their channel is
    UNLISTENed on the listener connection - on the last one while reconnecting; a change shows
    here once its UNLISTEN / LISTEN is done; local hub: at once).
    """

    watches: int
    received: int
    delivered: int
    gaps: int
    reconnects: int
    fallbacks: int
    overflows: int
    listening: bool
    unheard: frozenset[str] = frozenset()


class Watch:
    """Interest in one topic (and optionally one payload): a sync context manager.

    Registered as soon as `Hub.watch` returns, so nothing sent between a caller's check of the
    database and its next `wait` is missed. Meant for one waiting task at a time.
    """

    __slots__ = ("_hub", "_lot", "_state")

    def __init__(self, hub: Hub, topic: str, key: str | None) -> None:
        self._hub = hub
        self._lot = trio.lowlevel.ParkingLot()
        self._state: WatchState[Watch] = hub._registry.add(topic, key, self)

    @property
    def topic(self) -> str:
        return self._state.topic

    @property
    def key(self) -> str | None:
        return self._state.key

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unregister this watch and wake its waiter (which gets `WatchClosed`); idempotent."""
        if self._state.registered:
            self._hub._registry.remove(self._state)
            self._lot.unpark_all()

    def set_quiet(self, taker: Callable[[str], bool] | None) -> None:
        """Let ``taker`` take payloads of this wildcard watch without waking it: one it
        returns True for is its business alone (it records what it needs, synchronously, in
        the task that delivers notifications), and never shows in a `Wakeup`. For a waiter
        that would only note the payload and wait again: this spares it a wake-up per
        payload. None: every payload wakes it as usual."""
        if self._state.key is not None:
            raise ValueError("only a wildcard watch (key=None) can take payloads quietly")
        self._state.quiet = taker

    def _check_usable(self) -> None:
        if self._hub._closed:
            raise HubClosed("the notify hub of this watch is closed")
        if not self._state.registered:
            raise WatchClosed(f"this watch on {self.topic!r} is closed")

    def wait_nowait(self) -> Wakeup | None:
        """The pending wakeup (consuming it), or None if nothing is pending."""
        self._check_usable()
        return self._hub._registry.take(self._state)

    async def wait(self, timeout: float | None = None) -> Wakeup:
        """Wait for a matching notification, a gap, the fallback timer or ``timeout`` seconds.

        Returns at once if something arrived since the previous wakeup (or registration).
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        now = trio.current_time()
        fallback_at = now + self._hub._fallback_interval()
        timeout_at = math.inf if timeout is None else now + timeout
        parked = False
        while True:
            self._check_usable()
            if (wakeup := self._hub._registry.take(self._state)) is not None:
                if not parked:  # a schedule point all the same (parking is one)
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return wakeup
            with trio.move_on_at(min(fallback_at, timeout_at)) as scope:
                parked = True
                await self._lot.park()
            if scope.cancelled_caught:
                break
        self._check_usable()
        if (wakeup := self._hub._registry.take(self._state)) is not None:
            return wakeup
        if timeout_at <= fallback_at:
            return Wakeup(timed_out=True)
        self._hub._fallbacks += 1
        return Wakeup(fallback=True)

    def __repr__(self) -> str:
        return f"<Watch {self.topic}:{self.key!r}>"


class Hub:
    """The fan-out of notifications to watches. Made by `open_local_hub` / `open_pg_hub`."""

    def __init__(self, topics: Collection[str], config: NotifyConfig | None = None) -> None:
        self.config = NotifyConfig() if config is None else config
        self._registry: Registry[Watch] = Registry(topics, self.config.max_pending_keys)
        self._rng = random.Random()
        self._closed = False
        self._listening = False
        self._listener_pid: int | None = None
        self._reconnects = 0
        self._fallbacks = 0
        self._unheard: set[str] = set()  # wanted by set_heard
        self._unheard_applied: frozenset[str] = frozenset()  # as the source applied it
        self._heard_changed: Callable[[], None] | None = None  # the source's, if it applies

    @property
    def topics(self) -> frozenset[str]:
        """The topics (LISTEN channels) this hub serves."""
        return self._registry.topics

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listener_pid(self) -> int | None:
        """The backend pid of the PostgreSQL listener connection (None if not connected)."""
        return self._listener_pid

    def watch(self, topic: str, key: str | None = None) -> Watch:
        """Register interest in ``topic`` (``key=None``: every payload) and return the watch."""
        if self._closed:
            raise HubClosed("the notify hub is closed")
        return Watch(self, topic, key)

    def publish_local(self, topic: str, payload: str) -> None:
        """Wake this process's watches on ``(topic, payload)`` now (call it after commit).

        Call it from the Trio thread (from a worker thread: via `trio.from_thread.run_sync`).
        """
        validate_topic(topic)
        validate_payload(payload)
        if topic not in self._registry.topics:
            raise ValueError(f"unknown notify topic {topic!r}")
        if self._closed:
            raise HubClosed("the notify hub is closed")
        self._deliver(topic, payload)

    def set_heard(self, topic: str, heard: bool) -> None:
        """Stop (``heard=False``) or resume hearing ``topic``'s PostgreSQL channel; soon.

        For a process that has no use for a busy topic's notifications for a while (a worker
        not taking new work): it stops paying for hearing them. No I/O here: the listener task
        applies the latest wanted state soon (repeated calls coalesce), with ``UNLISTEN`` or
        ``LISTEN`` of the topic's own channel only (alias channels of ``open_pg_hub(aliases=)``
        stay heard). Notifications already in flight may still arrive (hints: harmless);
        `publish_local` still delivers. Heard again, the topic's watches (only theirs) get a
        gap once the ``LISTEN`` is done: what was sent meanwhile was missed, waiters rescan.
        A reconnected listener LISTENs only the channels heard then (its gap goes to every
        watch). ``HubStatistics.unheard`` shows the state applied. A local hub
        (`open_local_hub`) has nothing to unlisten: it only records the state.

        `ValueError` for a topic the hub does not serve, `TypeError` for a ``heard`` that is
        not a bool, `HubClosed` once closed.
        """
        validate_topic(topic)
        if topic not in self._registry.topics:
            raise ValueError(f"unknown notify topic {topic!r}")
        if not isinstance(heard, bool):
            raise TypeError(f"heard must be a bool, not {heard!r}")
        if self._closed:
            raise HubClosed("the notify hub is closed")
        if heard == (topic not in self._unheard):
            return
        if heard:
            self._unheard.discard(topic)
        else:
            self._unheard.add(topic)
        if self._heard_changed is None:  # no listener to tell: applied as it is
            self._unheard_applied = frozenset(self._unheard)
        else:
            self._heard_changed()

    def statistics(self) -> HubStatistics:
        r = self._registry
        return HubStatistics(
            watches=r.watches,
            received=r.received,
            delivered=r.delivered,
            gaps=r.gaps,
            reconnects=self._reconnects,
            fallbacks=self._fallbacks,
            overflows=r.overflows,
            listening=self._listening and not self._closed,
            unheard=self._unheard_applied,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Hub {state} topics={sorted(self.topics)}>"

    def _fallback_interval(self) -> float:
        jitter = self.config.fallback_jitter
        return self.config.fallback_interval * self._rng.uniform(1 - jitter, 1 + jitter)

    def _deliver(self, topic: str, payload: str) -> None:
        for watch in self._registry.deliver(topic, payload):
            watch._lot.unpark_all()

    def _gap_all(self) -> None:
        for watch in self._registry.gap_all():
            watch._lot.unpark_all()

    def _gap_topic(self, topic: str) -> None:
        for watch in self._registry.gap_topic(topic):
            watch._lot.unpark_all()

    def _close(self) -> None:
        self._closed = True
        self._listening = False
        self._listener_pid = None
        for watch in self._registry.clear():
            watch._lot.unpark_all()


class SourceLink:
    """What a source (`_pg_source`, `_local_source`) may do to its hub."""

    __slots__ = ("_hub",)

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def deliver(self, topic: str, payload: str) -> None:
        self._hub._deliver(topic, payload)

    def gap_all(self) -> None:
        self._hub._gap_all()

    @property
    def hub(self) -> Hub:
        return self._hub

    @property
    def rng(self) -> random.Random:
        """The hub's random source (for jitter)."""
        return self._hub._rng

    def set_listening(self, listening: bool, pid: int | None = None) -> None:
        self._hub._listening = listening
        self._hub._listener_pid = pid

    def close(self) -> None:
        """Close the hub: its waiters get `HubClosed`."""
        self._hub._close()

    def note_reconnect(self) -> None:
        self._hub._reconnects += 1

    def on_heard_change(self, callback: Callable[[], None]) -> None:
        """Have `Hub.set_heard` call ``callback`` (synchronously, no I/O) when the wanted state
        changes, instead of recording it as applied: the source applies it, then reports
        that with `set_unheard_applied`."""
        self._hub._heard_changed = callback

    def unheard_wanted(self) -> frozenset[str]:
        """The topics `Hub.set_heard` wants unheard now."""
        return frozenset(self._hub._unheard)

    @property
    def unheard_applied(self) -> frozenset[str]:
        return self._hub._unheard_applied

    def set_unheard_applied(self, topics: frozenset[str]) -> None:
        self._hub._unheard_applied = topics

    def gap_topics(self, topics: Iterable[str]) -> None:
        """Report a gap to the watches of ``topics`` (heard again after a pause)."""
        for topic in topics:
            self._hub._gap_topic(topic)
