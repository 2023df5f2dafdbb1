"""The in-process source: a hub fed by `Hub.publish_local` (SQLite, single node).

Writers call ``hub.publish_local(topic, key)`` after their transaction commits. Writers in other
processes cannot reach this hub; for them the caller may pass ``changed_elsewhere``, a cheap
check (SQLite: ``PRAGMA data_version``) that the hub's own task runs every ``poll_interval``
seconds: when it answers True, every watch gets a gap (re-read everything). Or the caller passes
``fetch_elsewhere``, which answers with the notifications other processes sent since its last
call (MySQL: rows of a signal table after the last one read), delivered like local ones; its
None means "cannot tell" (a gap). Watches still run their fallback timers.

`Hub.set_heard` on this hub only records the state (``HubStatistics.unheard``): there is no
channel to unlisten, and deliveries (local or fetched) are unaffected.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager

import trio

from ._config import NotifyConfig
from ._hub import Hub, SourceLink

__all__ = ["open_local_hub"]


@asynccontextmanager
async def open_local_hub(
    topics: Collection[str],
    config: NotifyConfig | None = None,
    *,
    changed_elsewhere: Callable[[], Awaitable[bool]] | None = None,
    fetch_elsewhere: Callable[[], Awaitable[Sequence[tuple[str, str]] | None]] | None = None,
    poll_interval: float = 0.05,
) -> AsyncIterator[Hub]:
    """An in-process `Hub`; leaving the block closes it (its waiters get `HubClosed`).

    ``changed_elsewhere``: asked every ``poll_interval`` seconds whether another process
    wrote; True reports a gap to every watch. ``fetch_elsewhere``: asked as often for the
    (topic, payload) pairs other processes sent meanwhile (None: a gap). Their errors
    propagate (out of this block). `Hub.set_heard` here only records the state.
    """
    if changed_elsewhere is not None and fetch_elsewhere is not None:
        raise ValueError("give changed_elsewhere or fetch_elsewhere, not both")
    if (changed_elsewhere is not None or fetch_elsewhere is not None) and not (
            math.isfinite(poll_interval) and poll_interval > 0):
        raise ValueError(f"poll_interval must be finite and > 0, not {poll_interval!r}")
    link = SourceLink(Hub(topics, config))
    link.set_listening(True)
    body_exc: BaseException | None = None
    await trio.lowlevel.checkpoint()
    try:
        async with trio.open_nursery() as nursery:
            if changed_elsewhere is not None:
                nursery.start_soon(_poll, link, changed_elsewhere, poll_interval)
            if fetch_elsewhere is not None:
                nursery.start_soon(_fetch, link, fetch_elsewhere, poll_interval)
            try:
                yield link.hub
            except GeneratorExit:
                raise
            except BaseException as exc:  # noqa: BLE001 - re-raised below, outside
                body_exc = exc  # the nursery, so that it is not wrapped in a group
            finally:
                nursery.cancel_scope.cancel()
    finally:
        link.close()
    if body_exc is not None:
        raise body_exc


async def _poll(link: SourceLink, changed_elsewhere: Callable[[], Awaitable[bool]],
                interval: float) -> None:
    while True:
        await trio.sleep(interval)
        if await changed_elsewhere():
            link.gap_all()


async def _fetch(link: SourceLink,
                 fetch: Callable[[], Awaitable[Sequence[tuple[str, str]] | None]],
                 interval: float) -> None:
    while True:
        await trio.sleep(interval)
        notes = await fetch()
        if notes is None:
            link.gap_all()
            continue
        for topic, payload in notes:
            if topic in link.hub.topics:
                link.deliver(topic, payload)
