"""The in-process source: a hub fed only by `Hub.publish_local` (SQLite, single node).

There is nothing to run: writers call ``hub.publish_local(topic, key)`` after their transaction
commits. Watches still run their fallback timers, which cover a writer in another process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import trio

from ._config import NotifyConfig
from ._hub import Hub, SourceLink

__all__ = ["open_local_hub"]


@asynccontextmanager
async def open_local_hub(
    topics: Collection[str], config: NotifyConfig | None = None
) -> AsyncIterator[Hub]:
    """An in-process `Hub`; leaving the block closes it (its waiters get `HubClosed`)."""
    link = SourceLink(Hub(topics, config))
    link.set_listening(True)
    await trio.lowlevel.checkpoint()
    try:
        yield link.hub
    finally:
        link.close()
