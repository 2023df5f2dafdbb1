"""How each driver's wake-ups travel between processes: the notify hub a Database opens.

`open_app` asks its database for the hub (``Database.open_hub``); the choice of a LISTEN
connection (PostgreSQL), a signal-table poll (MySQL) or a file-change poll (SQLite) lives
with the driver, so shared code has no branch per dialect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import psycopg

from romancy_notify import Hub, NotifyConfig, open_pg_hub

from ._pg_url import server_address


@dataclass(frozen=True)
class HubPlan:
    """What every driver's hub is made from (each uses the parts that apply to it)."""

    topics: Collection[str]
    config: NotifyConfig
    url: str = field(repr=False)  # URLs may carry a password: never in a repr
    """The database URL the app was opened with (PostgreSQL's LISTEN connects to it)."""
    listener_url: str | None = field(default=None, repr=False)
    """PostgreSQL: a direct URL for the LISTEN connection (behind a pooler)."""
    file_poll_interval: float | None = 1.0
    """SQLite: how often to check whether another process wrote (None: never)."""
    signal_interval: float = 0.05
    """MySQL: how often the signal table is polled."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """PostgreSQL: channels LISTENed besides the topics, each delivered as the topic it maps
    to (`Topics.done_for`: the app's own done channel)."""


def postgres_hub(plan: HubPlan) -> AbstractAsyncContextManager[Hub]:
    """PostgreSQL: LISTEN/NOTIFY; failing to reach the server raises StorageUnavailableError."""
    return _unavailable_as_error(
        open_pg_hub(plan.url, plan.topics, config=plan.config, listener_dsn=plan.listener_url,
                    aliases=plan.aliases),
        plan.listener_url or plan.url)


@asynccontextmanager
async def _unavailable_as_error(hub: AbstractAsyncContextManager[Hub], url: str
                                ) -> AsyncIterator[Hub]:
    from ._postgres import unavailable

    async with AsyncExitStack() as stack:
        try:
            entered = await stack.enter_async_context(hub)
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            raise unavailable(server_address(url), exc) from exc
        yield entered
