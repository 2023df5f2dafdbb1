"""`App`: what a program does with workflows (start, status, result, events, channels...);
`open_app` (in ``_open_app``) makes one."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from romancy_notify import Hub

from . import _clock
from ._channels import ChannelService
from ._codec import convert, loads
from ._compose_api import ComposeApi
from ._config import AppConfig
from ._definitions import Registry, Workflow
from ._engine._hooks import HookDispatcher
from ._engine._notes import event_info
from ._engine._scheduler import Scheduler
from ._engine._stats import SchedulerStatistics
from ._errors import (
    InstanceFinishedError,
    InstanceIdConflictError,
    InstanceNotFoundError,
    InvalidInputError,
    TimeoutWaitingError,
    UnknownWorkflowError,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from ._event_types import Event, EventReceipt
from .hooks import (
    EventReceived,
    HookStatistics,
    MessagePublished,
    StartInfo,
    WorkflowStarted,
    frozen_map,
)
from .storage import (
    Backlog,
    Claimed,
    Existing,
    InstanceInfo,
    RunInfo,
    Store,
    WorkflowStatus,
    read_backlog,
    read_subscribers,
    resume_failed,
)

if TYPE_CHECKING:
    from ._replay import ErrorInfo, HistoryEvent
    from .asgi import AsgiApp

_MAX_ID = 200



def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


_MAX_ATTRIBUTES = 32
_MAX_ATTRIBUTE_CHARS = 4096


def _check_attributes(attributes: Mapping[str, str] | None) -> Mapping[str, str]:
    if attributes is None:
        return frozen_map(None)
    if not isinstance(attributes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and "\x00" not in k + v
            and 0 < len(k) <= 200 and len(v) <= _MAX_ATTRIBUTE_CHARS
            for k, v in attributes.items()) or len(attributes) > _MAX_ATTRIBUTES:
        raise InvalidInputError(
            f"instance_attributes must map at most {_MAX_ATTRIBUTES} non-empty string keys (at "
            f"most 200 characters) to strings of at most {_MAX_ATTRIBUTE_CHARS} characters, "
            "without NUL")
    return frozen_map(attributes)


def _canonical(input_json: str) -> str:
    return json.dumps(loads(input_json), sort_keys=True, separators=(",", ":"))


def _check_same_start(iid: str, existing: Existing, name: str, input_json: str) -> None:
    """A repeated start of ``iid`` is idempotent only for the same workflow and input."""
    if existing.workflow_name != name:
        raise InstanceIdConflictError(
            f"instance id {iid!r} is already used by workflow {existing.workflow_name!r}")
    if _canonical(existing.input_json) != _canonical(input_json):
        raise InstanceIdConflictError(
            f"instance id {iid!r} was already started with a different input "
            f"(workflow {name!r}); start it with the same input, or choose another id")


def _check_instance_id(instance_id: str) -> str:
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInputError("instance_id must be a non-empty string")
    if len(instance_id) > _MAX_ID or "\x00" in instance_id:
        raise InvalidInputError(f"instance_id must be at most {_MAX_ID} characters with no NUL")
    return instance_id


class App(ComposeApi):
    """A running romancy_trio application. Create it with :func:`open_app`."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        registry: Registry,
        config: AppConfig,
        worker_id: str,
        scheduler: Scheduler | None,
        channels: ChannelService,
        hooks: HookDispatcher | None = None,
    ) -> None:
        self.store = store
        self.hub = hub
        self.registry = registry
        self.config = config
        self.worker_id = worker_id
        self._scheduler = scheduler
        self.channels = channels
        self._hooks = hooks or HookDispatcher()
        self._init_compose(store, hub, config.fallback_interval)

    async def publish(self, channel: str, data: Any, *,
                      metadata: dict[str, Any] | None = None) -> int:
        """Publish a message from outside any workflow; returns its id once committed."""
        return self._published(channel, await self.channels.publish(channel, data,
                                                                    metadata=metadata))

    async def publish_many(self, channel: str, items: Sequence[Any], *,
                           metadata: dict[str, Any] | None = None) -> list[int]:
        """Publish several messages in one transaction (ids in order): the way to feed a
        channel fast, since each transaction is a round trip and a COMMIT (and publishes
        to one broadcast channel commit one after another)."""
        ids = await self.channels.publish_many(channel, items, metadata=metadata)
        for message_id in ids:
            self._published(channel, message_id)
        return ids

    async def send_to(self, instance_id: str, channel: str, data: Any, *,
                      metadata: dict[str, Any] | None = None) -> int:
        """A direct message that only ``instance_id`` receives on ``channel``, whether it
        subscribed or not; returns its id once committed. Raises
        :class:`InstanceNotFoundError` if no instance has that id and
        :class:`InstanceFinishedError` if it has ended (nothing would ever receive it); the
        check and the insert are one transaction, so nothing is written then."""
        return self._published(channel, await self.channels.publish(
            channel, data, metadata=metadata, target=instance_id))

    def _published(self, channel: str, message_id: int) -> int:
        if MessagePublished in self._hooks.wanted:
            self._hooks.emit(MessagePublished("", "", self.worker_id, _clock.now(), channel,
                                              message_id))
        return message_id

    def asgi(self, *, max_body_bytes: int = 1_048_576, bearer_token: str | None = None
             ) -> AsgiApp:
        """The HTTP face of this app (CloudEvents intake, JSON API, websocket channel feed)
        as an ASGI callable, to serve with hypercorn in Trio mode or mount in a router."""
        from .asgi import create_asgi_app

        return create_asgi_app(self, max_body_bytes=max_body_bytes, bearer_token=bearer_token)

    def workflows(self) -> dict[str, Workflow[Any, Any]]:
        """The workflows this app knows, by name (a copy): what integrations expose."""
        return dict(self.registry.workflows)

    def _workflow(self, workflow: Workflow[Any, Any] | str) -> Workflow[Any, Any]:
        name = workflow if isinstance(workflow, str) else workflow.name
        found = self.registry.workflow(name)
        if isinstance(workflow, Workflow) and found is not workflow and found.fn is not workflow.fn:
            raise UnknownWorkflowError(name, list(self.registry.workflows))
        return found

    async def start(
        self,
        workflow: Workflow[Any, Any] | str,
        /,
        *args: Any,
        instance_id: str | None = None,
        instance_attributes: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> str:
        """Start a workflow with its arguments; return its instance id.

        ``app.start(wf, order)`` for a workflow with one parameter;
        ``app.start(wf, 1, "b", c=True)`` for several (positional and keyword, as the
        workflow declares them). Each argument is checked against its annotation.
        With a caller-chosen ``instance_id`` starting is idempotent: if that id exists for the
        same workflow and the same input (compared as canonical JSON of the normalized input
        it was first started with), nothing new is created and the id is returned. Another
        workflow, or another input, is an :class:`InstanceIdConflictError`. Bad input raises
        :class:`InvalidInputError` and writes nothing.

        ``instance_attributes``: string pairs stored with the instance (e.g. the W3C
        ``traceparent`` of the request that starts it); the app's hooks may add more
        (`Hooks.instance_attributes`) and read them in every run.
        """
        iid, _ = await self._start(workflow, args, kwargs, instance_id, instance_attributes)
        return iid

    async def _start(self, workflow: Workflow[Any, Any] | str, args: tuple[Any, ...],
                     kwargs: dict[str, Any], instance_id: str | None,
                     instance_attributes: Mapping[str, str] | None, *, watched: bool = False
                     ) -> tuple[str, bool]:
        """`start`; also says whether this call created the instance. ``watched``: this
        worker waits for its end (`run`), so a finish elsewhere notifies it."""
        wf = self._workflow(workflow)
        input_json = wf.input.encode(wf.input.bind(args, kwargs))
        iid = _check_instance_id(instance_id) if instance_id is not None else uuid.uuid4().hex
        attributes = _check_attributes(instance_attributes)
        eager = self._scheduler is not None and self._scheduler.try_reserve()
        now = _clock.now()
        try:
            if self._hooks.supplies_attributes:  # (a supplier that raises is counted, not raised)
                attributes = self._hooks.instance_attributes(
                    StartInfo(wf.name, iid, attributes, eager))
            created = await self.store.create_instance(
                iid,
                wf.name,
                input_json,
                now=now,
                owner=self.worker_id if eager else None,
                lease_ttl=self.config.lease_ttl,
                attributes=attributes,
                watcher=self.worker_id if watched else None,
            )
        except BaseException:
            if eager:
                assert self._scheduler is not None
                self._scheduler.unreserve()
            raise
        if isinstance(created, Existing):
            if eager:
                assert self._scheduler is not None
                self._scheduler.unreserve()
            _check_same_start(iid, created, wf.name, input_json)
            return iid, False
        if WorkflowStarted in self._hooks.wanted:
            self._hooks.emit(WorkflowStarted(iid, wf.name, self.worker_id, now, attributes))
        if eager:
            assert self._scheduler is not None
            self._scheduler.run_reserved(Claimed(created, wf.name, input_json, 1, now,
                                                 fresh=True, attributes=attributes))
        return iid, True

    async def send_event(self, event: Event) -> EventReceipt:
        """Record an event and deliver it to the instances waiting for its type (or, with
        ``target_instance_id``, to that instance's inbox). Returns once committed; sending the
        same (source, id) again records nothing new (``duplicate=True``)."""
        receipt = await self.store.waits.send_event(event)
        self._received(event, receipt)
        return receipt

    async def send_events(self, events: Sequence[Event]) -> list[EventReceipt]:
        """Record several events atomically, in one transaction, and deliver them as
        :meth:`send_event` does; one receipt per event, in order. All or nothing: if one is
        invalid (`InvalidInputError`) or targets an instance that does not exist
        (`InstanceNotFoundError`), nothing is stored."""
        receipts = await self.store.waits.send_events(events)
        for event, receipt in zip(events, receipts, strict=True):
            self._received(event, receipt)
        return receipts

    def _received(self, event: Event, receipt: EventReceipt) -> None:
        """`EventReceived` for each instance the committed ``event`` was delivered to."""
        if EventReceived in self._hooks.wanted and receipt.delivered_to:
            info, now = event_info(event.body()), _clock.now()
            assert info is not None
            for iid in receipt.delivered_to:
                # the workflow's name is not at hand here: hooks know it from the run
                self._hooks.emit(EventReceived(iid, "", self.worker_id, now, info))

    async def status(self, instance_id: str) -> InstanceInfo:
        """The instance, with its ``counters`` (`ActivityContext.count`, all runs summed)."""
        info = await self._info(instance_id)
        return replace(info, counters=await self.store.counters(instance_id))

    async def _info(self, instance_id: str) -> InstanceInfo:
        info = await self.store.get_instance(instance_id)
        if info is None:
            raise InstanceNotFoundError(instance_id)
        return info

    async def history(self, instance_id: str) -> list[HistoryEvent]:
        """The recorded steps of the instance's current run, oldest first (read-only): each
        activity's result or failure (``kind``, ``key`` = the activity id, ``payload``), failed
        attempts, received events and messages, fired timers. For tools built on the app
        (usage reports, viewers); replay reads the same rows."""
        info = await self.status(instance_id)
        return await self.store.load_history(instance_id, info.run_no)

    async def result(self, instance_id: str, *, timeout: float | None = None) -> Any:
        """Wait for the instance to end; return its result or raise why it did not complete."""
        return await self._result(instance_id, timeout, marked=False)

    async def _result(self, instance_id: str, timeout: float | None, *, marked: bool) -> Any:
        """`result`; ``marked``: this worker is already the instance's watcher (`run`)."""
        deadline = None if timeout is None else trio.current_time() + timeout
        with self.hub.watch(self.store.topics.done, instance_id) as watch:
            while True:
                info = await self._info(instance_id)
                if info.status.is_terminal:
                    return self._outcome(info)
                if not marked:  # a finish elsewhere notifies only a marked waiter (issue #22)
                    marked = True
                    if not await self.store.mark_watcher(instance_id, self.worker_id):
                        continue  # read again: a finish committed before the mark sent nothing
                remaining = None if deadline is None else deadline - trio.current_time()
                if remaining is not None and remaining <= 0:
                    raise TimeoutWaitingError(
                        f"workflow {instance_id!r} still {info.status} after {timeout}s"
                    )
                await watch.wait(timeout=remaining)

    def _outcome(self, info: InstanceInfo) -> Any:
        return self._outcome_of(info.instance_id, info.workflow_name, info.status, info.result,
                                info.error)

    def _outcome_of(self, iid: str, name: str, status: WorkflowStatus, result: Any,
                    err: ErrorInfo | None) -> Any:
        if status is WorkflowStatus.CANCELLED:
            raise WorkflowCancelledError(iid)
        if status is WorkflowStatus.FAILED:
            if err is None:
                raise WorkflowFailedError(iid, "unknown", "")
            raise WorkflowFailedError(iid, err.type, err.message,
                                      activity_id=err.activity_id,
                                      activity_name=err.activity_name, attempts=err.attempts)
        wf = self.registry.workflows.get(name)
        return result if wf is None else convert(result, wf.result_hint, "result")

    async def run(
        self,
        workflow: Workflow[Any, Any] | str,
        /,
        *args: Any,
        instance_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Start a workflow with its arguments (as :meth:`start`) and wait for its result."""
        iid = uuid.uuid4().hex if instance_id is None else _check_instance_id(instance_id)
        # a run that ends in this process hands its outcome over (`Handover`): no status
        # SELECT; one that ends elsewhere is read when its done notification arrives
        with self.store.handover.expect(iid) as slot, \
                self.hub.watch(self.store.topics.done, iid) as watch:
            _, created = await self._start(workflow, args, kwargs, iid, None, watched=True)
            if created:
                deadline = math.inf if timeout is None else trio.current_time() + timeout
                woken = await watch.wait(timeout=None if timeout is None else max(0.0, timeout))
                done = slot.finished
                if not woken.timed_out and done is None and slot.running:
                    with trio.move_on_at(deadline):  # (only then: a cancel scope costs)
                        done = await slot.wait()
                if done is not None:
                    return self._outcome_of(iid, self._workflow(workflow).name,
                                            done.status, done.result, done.error)
                timeout = None if timeout is None else max(0.0, deadline - trio.current_time())
        return await self._result(iid, timeout, marked=created)

    async def cancel(self, instance_id: str) -> None:
        """Cancel a live instance. A running one is stopped promptly on whichever worker runs it
        (told through the notify hub); a waiting one is not claimed just to end it; a
        ``queued`` one leaves its queue (it never runs and holds no slot). The compensations
        of its completed activities run, then its status is ``cancelled``."""
        if await self.store.waits.cancel(instance_id, now=_clock.now()) is None:
            info = await self.status(instance_id)
            raise InstanceFinishedError(
                f"workflow {instance_id!r} already ended ({info.status}); nothing to cancel"
            )

    async def resume(self, instance_id: str) -> str:
        """Retry a failed instance from its last failed activity; returns that activity's
        id. Its failure stays recorded in the history (retired, not replayed); the activity
        runs again with fresh attempts. Raises :class:`InstanceFinishedError` if the instance
        did not fail at an activity (or its compensations already ran)."""
        return await resume_failed(self.store.db, self.store.topics.work, instance_id,
                                   now=_clock.now())

    async def list_instances(
        self,
        *,
        status: WorkflowStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> list[InstanceInfo]:
        st = WorkflowStatus(status) if status is not None else None
        return await self.store.list_instances(status=st, workflow_name=workflow, limit=limit)

    async def runs(self, instance_id: str) -> list[RunInfo]:
        """The lineage of ``recur`` runs of one instance, oldest first."""
        return await self.store.list_runs(instance_id)

    def replay(self, workflow: str, input: Any, history: Sequence[Mapping[str, Any]], *,
               started_at: float = 0.0) -> int:
        """Replay an exported history (rows with ``seq``, ``kind``, ``key``, ``payload``,
        ``at``) against this app's code for ``workflow``, with no side effects; return the
        steps it consumed, or raise :class:`NonDeterminismError` where the code diverges."""
        from ._codec import dumps
        from ._engine._replay_check import check_replay, history_event

        events = [history_event(row) for row in history]
        return check_replay(self._workflow(workflow), dumps(input), events,
                            started_at=started_at)

    def statistics(self) -> SchedulerStatistics | None:
        if self._scheduler is None:
            return None
        db = self.store.db
        return dataclasses.replace(self._scheduler.statistics(), storage_retries=db.retries,
                                   storage_rolled_back=db.rolled_back)

    async def backlog(self, *, channel_limit: int = 100) -> Backlog:
        """How much work waits in the database (for every worker): runnable instances,
        waiting ones, outbox events pending and failed, undelivered messages per channel
        (the first ``channel_limit`` channels by name), and the instances of this app's
        workflows whose code version none of its workers may resume (``stranded``). A few
        counts: sample it, e.g. for metrics (`romancy_trio.otel.record_backlog`), not in a
        loop."""
        return await read_backlog(self.store.db, now=_clock.now(), limit=channel_limit,
                                  workflows=set(self.registry.workflows),
                                  resumable=self.store.code_versions)

    async def subscribers(self, *, channel_limit: int = 100) -> dict[str, list[str]]:
        """Per channel (the first ``channel_limit`` by name), the instances subscribed to
        it, for dashboards (their depth: :meth:`backlog`)."""
        return await read_subscribers(self.store.db, limit=channel_limit)

    def hook_statistics(self) -> list[HookStatistics]:
        """Per hook given to ``open_app``: notifications delivered, failed, timed out and
        dropped (see :mod:`romancy_trio.hooks`)."""
        return self._hooks.statistics()
