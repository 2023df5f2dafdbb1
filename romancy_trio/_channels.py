"""Channels between workflows: subscribe, unsubscribe, publish, send_to, receive.

Subscribing, unsubscribing and publishing from a workflow are built-in transactional activities
(recorded once, replayed from history). ``receive`` is a wait: when no message is there the
workflow is suspended - no task, no lease - and a publish on that channel makes it runnable
again (broadcast: every waiting subscriber; competing: one per message). A received message is
recorded in history in the same transaction that consumes it, so replay returns it and never
consumes a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar, overload

from romancy_channels import ChannelEngine, ChannelMode, ChannelModeError, Message
from romancy_channels import ChannelError as EngineChannelError

from . import _clock
from ._activity_context import ActivityContext
from ._codec import dumps
from ._definitions import Activity
from ._errors import (
    ActivityFailedError,
    ChannelError,
    InstanceFinishedError,
    InstanceNotFoundError,
)
from ._replay import (
    ActivityCall,
    ErrorInfo,
    EventKind,
    ReceivedMessage,
    RetryPolicy,
    WaitKind,
    WaitRequest,
    WorkflowContext,
    type_name,
)
from .storage import Found, Row, Statement, Store, Tx, WorkflowStatus

T = TypeVar("T")
SUBSCRIBE = "romancy.channel.subscribe"
UNSUBSCRIBE = "romancy.channel.unsubscribe"
PUBLISH = "romancy.channel.publish"
Mode = Literal["broadcast", "competing"]


class ChannelService:
    """The channel engine bound to one app's store: publishing wakes waiting receivers."""

    def __init__(self, store: Store, *, default_retry: RetryPolicy | None = None) -> None:
        self.store = store
        self.default_retry = default_retry or RetryPolicy()
        self.engine = ChannelEngine(store.db.dialect, notify_topic=store.topics.channel,
                                    schema=store.db.schema)
        store.waits.channels = self
        self._modes: dict[str, ChannelMode] = {}  # a channel's mode never changes once set

    async def _mode_tx(self, tx: Tx, channel: str) -> ChannelMode | None:
        mode = self._modes.get(channel)
        if mode is None:
            modes = {m for _, m in await self.engine.subscribers_tx(tx, channel)}
            mode = ChannelMode.COMPETING if ChannelMode.COMPETING in modes else (
                ChannelMode.BROADCAST if modes else None)
            if mode is not None and len(self._modes) < 10_000:  # bounded cache
                self._modes[channel] = mode
        return mode

    async def publish_tx(self, tx: Tx, channel: str, data: Any, *, metadata: Any = None,
                         target: str | None = None) -> int:
        (message_id,) = await self.publish_many_tx(tx, channel, [data], metadata=metadata,
                                                   target=target)
        return message_id

    async def publish_many_tx(self, tx: Tx, channel: str, items: Sequence[Any], *,
                              metadata: Any = None, target: str | None = None,
                              then_commit: bool = False) -> list[int]:
        """Publish several messages in the caller's transaction (ids in order) and, once it
        has committed, wake the receivers waiting on the channel: broadcast all,
        competing/targeted one per message. PostgreSQL: the inserts in one round trip, with
        COMMIT and the wake-up too if ``then_commit`` (the transaction's last statements).

        The wake-up runs after COMMIT so that it sees every receiver that suspended before
        the messages were visible; a receiver suspending meanwhile looks again after its own
        COMMIT (`WaitStore.suspend`). Neither waits for the other."""
        data = [dumps(d) for d in items]
        mode = await self._mode_tx(tx, channel)
        statements = self.engine.publish_statements(
            channel, data, metadata_json=dumps(metadata or {}), target=target, now=_clock.now(),
            mode=mode)
        limit = len(data) if mode is ChannelMode.COMPETING or target is not None else None
        waits = self.store.waits
        tx.after_commit(waits.wake_statement(WaitKind.CHANNEL, channel, target=target,
                                             limit=limit), waits.woken_notes)
        await self.engine.announce_tx(tx, channel)
        if target is None:
            published = await tx.fetch_batch(statements, then_commit=then_commit)
            return self.engine.published_ids(data, published)
        # A direct message: the target's status is read in the same transaction and round
        # trip as the insert, which a missing or finished target rolls back (instances are
        # never deleted, so one found here still exists at COMMIT). Its COMMIT can't travel
        # with the batch: the outcome may be a reason to roll back.
        found, *published = await tx.fetch_batch(
            [(self.store.q.target_status, {"target": target}), *statements])
        _check_target(target, found)
        return self.engine.published_ids(data, published)

    async def publish(self, channel: str, data: Any, *, metadata: Any = None,
                      target: str | None = None) -> int:
        async with self.store.db.transaction() as tx:
            (message_id,) = await self.publish_many_tx(tx, channel, [data], metadata=metadata,
                                                       target=target, then_commit=True)
            return message_id

    async def publish_many(self, channel: str, items: Sequence[Any], *,
                           metadata: Any = None) -> list[int]:
        async with self.store.db.transaction() as tx:
            return await self.publish_many_tx(tx, channel, items, metadata=metadata)

    async def sweep(self, *, since: float, batch: int = 500) -> int:
        """Fallback re-check: wake instances waiting on a channel published at or after
        ``since`` that have a message for them (a publish's own wake-up is only a hint).
        Bounded; an idle system pays one query. Returns how many were woken."""
        woken = 0
        async with self.store.db.transaction() as tx:
            rows = await tx.fetchall(self.store.waits.w.stale_channel_waiters,
                                     {"since": since, "limit": batch})
            for iid, channel in rows:
                try:
                    ready = await self.engine.has_message_tx(tx, channel, iid)
                except EngineChannelError:
                    ready = True  # a bad name: let its receive record the error
                if ready:
                    woken += len(await self.store.waits.wake_waiters_tx(
                        tx, WaitKind.CHANNEL, channel, target=iid, limit=1))
        return woken

    async def take_tx(self, tx: Tx, channel: str, subscriber: str) -> Found | None:
        """Take the next message for ``subscriber``: what its receive records, or None."""
        try:
            message = await self.engine.take_next_tx(tx, channel, subscriber, now=_clock.now())
        except EngineChannelError as exc:
            return _failed(exc)
        return _received(message)

    def take_statement(self, channel: str, subscriber: str) -> Statement | None:
        """`take_tx` as one statement to send with others (then `taken`); None where the
        dialect takes in several steps, or where the names are bad (`take_tx` says why)."""
        try:
            return self.engine.take_statement(channel, subscriber, now=_clock.now())
        except EngineChannelError:
            return None

    def taken(self, channel: str, subscriber: str, rows: list[Row]) -> Found | None:
        try:
            return _received(self.engine.taken(channel, subscriber, rows))
        except EngineChannelError as exc:
            return _failed(exc)

    def ready_query(self, channel: str, subscriber: str, *, woken: str
                    ) -> tuple[str, dict[str, Any]]:
        return self.engine.has_message_statement(channel, subscriber, woken=woken)

    def activities(self) -> list[Activity[..., Any]]:
        async def subscribe_(ctx: ActivityContext, channel: str, mode: str) -> None:
            await self.engine.subscribe_tx(await _tx(ctx), channel, ctx.instance_id,
                                           ChannelMode(mode), now=_clock.now())

        async def unsubscribe_(ctx: ActivityContext, channel: str) -> bool:
            return await self.engine.unsubscribe_tx(await _tx(ctx), channel, ctx.instance_id)

        async def publish_(ctx: ActivityContext, channel: str, data: Any, metadata: Any,
                           target: str | None) -> int:
            return await self.publish_tx(await _tx(ctx), channel, data, metadata=metadata,
                                         target=target)

        once = RetryPolicy(max_attempts=1)
        # a missing or finished target is an answer, not a hiccup: never retried
        final = tuple(type_name(t) for t in (InstanceNotFoundError, InstanceFinishedError))
        publish_retry = replace(self.default_retry,
                                non_retryable=(*self.default_retry.non_retryable, *final))
        return [Activity(subscribe_, name=SUBSCRIBE, transactional=True, retry=once),
                Activity(unsubscribe_, name=UNSUBSCRIBE, transactional=True, retry=once),
                Activity(publish_, name=PUBLISH, transactional=True, retry=publish_retry)]


def _check_target(target: str, found: list[Row]) -> None:
    if not found:
        raise InstanceNotFoundError(target)
    status = WorkflowStatus(found[0][0])
    if status.is_terminal:
        raise InstanceFinishedError(
            f"workflow instance {target!r} already ended ({status}): nothing would ever "
            "receive a message sent to it")


def _received(message: Message | None) -> Found | None:
    return None if message is None else (EventKind.MESSAGE_RECEIVED, message.to_json())


def _failed(exc: EngineChannelError) -> Found:
    """A bad channel name: the workflow's error, recorded as its wait's."""
    return EventKind.WAIT_FAILED, ErrorInfo.from_exception(exc).to_json()


async def _tx(ctx: ActivityContext) -> Tx:
    session = ctx.db
    tx = getattr(session, "tx", None)
    if tx is None:
        raise RuntimeError("channel activities need a transactional session")
    result: Tx = await tx()
    return result


async def subscribe(ctx: WorkflowContext, channel: str, mode: Mode = "broadcast") -> None:
    """Subscribe this instance. Broadcast: it gets every message published from now on.
    Competing: each message goes to exactly one subscriber. The first subscription locks the
    channel's mode; subscribing in the other mode raises :class:`ChannelError`."""
    try:
        await ActivityCall[None](SUBSCRIBE, (channel, ChannelMode(mode).value))
    except ActivityFailedError as exc:
        if exc.error_type.endswith(ChannelModeError.__qualname__):
            raise ChannelError(exc.message) from None
        raise


async def unsubscribe(ctx: WorkflowContext, channel: str) -> bool:
    """Stop receiving from ``channel``; True if this instance was subscribed."""
    result: bool = await ActivityCall[bool](UNSUBSCRIBE, (channel,), result_hint=bool)
    return result


async def publish(ctx: WorkflowContext, channel: str, data: Any, *,
                  metadata: dict[str, Any] | None = None) -> int:
    """Publish a message (any JSON value); returns its id. Recorded: replay does not resend."""
    result: int = await ActivityCall[int](PUBLISH, (channel, data, metadata, None),
                                          result_hint=int)
    return result


async def send_to(ctx: WorkflowContext, instance_id: str, channel: str, data: Any, *,
                  metadata: dict[str, Any] | None = None) -> int:
    """A direct message on ``channel`` that only ``instance_id`` receives, subscribed or
    not (exactly once, with its next ``receive`` on that channel). A target that does not
    exist, or has ended, fails this call (not retried): :class:`ActivityFailedError` with
    ``error_type`` naming :class:`InstanceNotFoundError` / :class:`InstanceFinishedError`."""
    result: int = await ActivityCall[int](PUBLISH, (channel, data, metadata, instance_id),
                                          result_hint=int)
    return result


@overload
def receive(ctx: WorkflowContext, channel: str, *, timeout: float | None = None
            ) -> WaitRequest[ReceivedMessage[Any]]: ...
@overload
def receive(ctx: WorkflowContext, channel: str, *, timeout: float | None = None,
            data_type: type[T]) -> WaitRequest[ReceivedMessage[T]]: ...
def receive(ctx: WorkflowContext, channel: str, *, timeout: float | None = None,
            data_type: Any = Any) -> Any:
    """The next message for this instance on ``channel``: what it subscribed to, and the
    direct messages sent to it with ``send_to`` (which need no subscription: an instance
    that never subscribed receives only those). Waits without holding a worker; ``timeout``
    raises :class:`ReceiveTimeoutError`."""
    if not channel:
        raise ValueError("channel must be a non-empty string")
    return ctx._wait(WaitKind.CHANNEL, channel, timeout, data_type)
