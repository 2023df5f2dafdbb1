"""``open_app``: the database, the notify hub and the scheduler, owned by one nursery."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from romancy_notify import Hub, NotifyConfig

from . import _clock
from ._app import App, default_worker_id
from ._channels import ChannelService
from ._compose_api import compose_activities
from ._config import AppConfig
from ._definitions import Activity, Registry, Workflow, default_registry
from ._engine._hooks import HookDispatcher
from ._engine._scheduler import Scheduler
from ._errors import ConfigurationError
from ._interrupt import interrupt_as_one, one_interrupt
from ._versions import code_versions
from .hooks import Hooks
from .logs import log_context
from .storage import DEFAULT_URL, check_url, open_store
from .storage._hubs import HubPlan
from .storage._pg_url import check_postgres_url

if TYPE_CHECKING:
    from .outbox import RelayerConfig



@asynccontextmanager
async def open_app(
    url: str | None = None,
    *,
    worker_id: str | None = None,
    workflows: Iterable[Workflow[Any, Any] | Activity[..., Any]] | None = None,
    config: AppConfig | None = None,
    run_workers: bool = True,
    notify_config: NotifyConfig | None = None,
    listener_url: str | None = None,
    relayer: RelayerConfig | None = None,
    wait_for_database: float = 0.0,
    hooks: Sequence[Hooks] = (),
) -> AsyncIterator[App]:
    """Open the database (migrating it), the notify hub and - unless ``run_workers=False`` - the
    scheduler that runs workflows in this process. Leaving the block stops everything cleanly and
    hands unfinished instances back to the database for other workers.

    ``url``: ``sqlite:///path.db``, ``postgresql://user@host/db`` or
    ``mysql://user:password@host/db`` (MySQL >= 8.0, MariaDB >= 10.6); without it, the
    ``ROMANCY_TRIO_URL`` environment variable when set, else ``sqlite:///romancy.db``. With a
    standby: ``postgresql://user@h1:5432,h2:5432/db?target_session_attrs=read-write`` (every
    connection goes to whichever host is the primary, also after a failover).
    ``workflows``: the workflows and activities this app knows (default: every decorated one).
    ``listener_url``: PostgreSQL only - a direct connection to the same database when ``url``
    goes through a transaction-pooling proxy (PgBouncer): it carries LISTEN and the worker's
    own session (lease renewal, its advisory lock), which need a server session of their own;
    without it, the ``ROMANCY_TRIO_LISTENER_URL`` environment variable when set. With it, the
    pool prepares no server-side statements unless ``config.prepared_statements`` says so.
    ``relayer``: deliver outbox events (``ctx.send_event`` in activities) to this sink; several
    processes may run relayers on one database.
    ``wait_for_database``: PostgreSQL only - seconds to keep trying to reach the server at
    start (e.g. a container starting alongside it). Unreachable then (default 0: at once),
    ``open_app`` raises :class:`StorageUnavailableError` naming host, port and the cause.
    ``hooks``: told what happens (:mod:`romancy_trio.hooks`), in this process, once.
    """
    url = url or os.environ.get("ROMANCY_TRIO_URL") or DEFAULT_URL
    if not (isinstance(wait_for_database, int | float) and 0 <= wait_for_database < math.inf):
        raise ConfigurationError(
            f"wait_for_database must be a number of seconds >= 0, not {wait_for_database!r}")
    config = config or AppConfig()
    dialect = check_url(url)
    listener_url = listener_url or os.environ.get("ROMANCY_TRIO_LISTENER_URL") or None
    if dialect == "sqlite":
        listener_url = None
    if listener_url is not None and dialect == "postgres":
        check_postgres_url(listener_url, "listener_url")
    registry = Registry.of(workflows) if workflows is not None else default_registry.copy()
    try:
        dispatcher = HookDispatcher(hooks, queue=config.hook_queue, timeout=config.hook_timeout)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None
    notify_config = notify_config or NotifyConfig(fallback_interval=config.fallback_interval)
    link = config.link_timeouts()  # every PostgreSQL connection: a cut link noticed in time
    if notify_config.link is None:
        notify_config = replace(notify_config, link=link)
    async with open_store(url, schema=config.schema, pool_size=config.pool_size,
                          wait_for_database=wait_for_database, link=link,
                          session_url=listener_url,
                          prepared_statements=config.prepared_statements) as store:
        channels = ChannelService(store, default_retry=config.default_retry)
        for builtin in (*channels.activities(), *compose_activities(store)):
            registry.add(builtin)
        wid = worker_id or default_worker_id()
        plan = HubPlan(store.topics.all(), notify_config, url, listener_url,
                       file_poll_interval=config.sqlite_poll_interval,
                       signal_interval=config.mysql_signal_interval,
                       aliases={store.topics.done_for(wid): store.topics.done})
        async with store.db.open_hub(plan) as hub:
            store.db.set_after_commit(lambda notes: _publish(hub, notes))
            # a worker claims at least once per longest fallback wait and learns the next
            # deadline then; twice that leaves room for the claim itself and a slow worker
            store.waits.deadline_hint_horizon = 2 * notify_config.longest_fallback
            store.code_version, store.code_versions = code_versions(registry, config)
            context = log_context.set(("", "", wid))  # the app's tasks log with its worker id
            clock = _clock.install(config.clock)  # the durable clock of every task below
            body_error: BaseException | None = None
            # Ctrl+C reaching any of the app's tasks leaves as one plain KeyboardInterrupt
            # (from the inner nursery, and from this one, which would wrap it in a group again)
            async with interrupt_as_one(), trio.open_nursery() as hook_nursery:  # outlives
                await hook_nursery.start(dispatcher.serve)  # the others: it drains the hooks
                async with interrupt_as_one(), trio.open_nursery() as nursery:
                    scheduler = None
                    if run_workers:
                        scheduler = Scheduler(store, registry, hub, config, wid, channels,
                                              dispatcher)
                        await nursery.start(scheduler.serve)
                    if relayer is not None:
                        from .outbox import Relayer

                        outbox = Relayer(store.db, hub, relayer, worker_id=wid,
                                         topic=store.topics.outbox)
                        await nursery.start(outbox.serve)

                    app = App(store, hub, registry, config, wid, scheduler, channels,
                              dispatcher)
                    if scheduler is not None:  # children told, schedules ticked, queues
                        for service in app._compose_services():  # admitted, outages ridden out
                            await nursery.start(service.serve, scheduler.outages)
                    try:
                        yield app
                    except BaseException as exc:  # noqa: BLE001 - re-raised below, outside
                        body_error = exc
                    nursery.cancel_scope.cancel()
                # what the stopped runs told the hooks last is delivered, within hook_timeout
                await dispatcher.drain(config.hook_timeout)
                hook_nursery.cancel_scope.cancel()
            log_context.reset(context)
            _clock.uninstall(clock)
            if body_error is not None:
                raise one_interrupt(body_error)



def _publish(hub: Hub, notes: Sequence[tuple[str, str]]) -> None:
    for topic, payload in notes:
        hub.publish_local(topic, payload)
