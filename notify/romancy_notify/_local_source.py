"""The in-process source: a hub fed by `Hub.publish_local` (SQLite, single node).

Writers call ``hub.publish_local(topic, key)`` after their transaction commits. Writers in other
processes cannot reach this hub; for them the caller may pass ``changed_elsewhere``, a cheap
check (SQLite: ``PRAGMA data_version``) that the hub's own task runs every ``poll_interval``
seconds: when it answers True, every watch gets a gap (re-read everything). Watches still run
their fallback timers.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
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
    poll_interval: float = 0.05,
) -> AsyncIterator[Hub]:
    """An in-process `Hub`; leaving the block closes it (its waiters get `HubClosed`).

    ``changed_elsewhere``: asked every ``poll_interval`` seconds whether another process
    wrote; True reports a gap to every watch. Its errors propagate (out of this block).
    """
    if changed_elsewhere is not None and not (
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
