"""The nursery-structured scheduler: claim, lease, run, renew, release, take over.

One nursery owns every task: the claim loop, the heartbeat, the takeover check, the cancel
listener, and one task per running instance, each inside its own cancel scope. Claims are
bounded ``SKIP LOCKED`` batches; the claim loop sleeps until a notification (new work), the
earliest foreign lease expiry (takeover of a crashed worker's instance) or the slow fallback,
whichever comes first - it never polls on a short fixed timer. The heartbeat renews all this
worker's leases in one statement and cancels any instance whose lease it no longer holds (taken
over, or cancelled by a user).

Liveness (issue #17). The heartbeat runs on the worker's own session (`Store.worker_session`:
on PostgreSQL a connection outside the pool that holds this worker's advisory lock and is
reopened as soon as it drops), so activities holding every pooled connection cannot delay
renewal; after a failure it retries after 50 ms, doubling up to the heartbeat interval. While
other workers hold running leases, the takeover check (a short library statement) runs every
``takeover_check_interval`` and expires the leases of workers found without a session twice in
a row, 0.1 s apart (a crashed process's backend ends at once), so their instances are claimed
within about an interval and a tenth instead of after the lease TTL; otherwise it runs once
after each claim and each renewal. The claim loop stops claiming while activities wait
for a transaction slot (`TransactionGate`): work this worker cannot serve stays claimable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import trio
import trio.lowlevel

from romancy_notify import Hub, Watch

from .._channels import ChannelService
from .._config import AppConfig
from .._definitions import Registry
from .._errors import LeaseLostError, StorageUnavailableError
from ..storage import Claimed, Lease, Store, WorkerSession, hints
from ._peers import Peers
from ._runner import run_claimed

log = logging.getLogger("romancy_trio.scheduler")

_FIRST_RETRY = 0.05
"""Seconds before the first retry of a failed renewal; doubled per failure up to the heartbeat
interval, so a short outage costs little and a long one sends few attempts."""

_CONFIRM_AFTER = 0.1
"""Seconds between the check that finds a worker without a session and the one that takes its
instances over (the worker session of a live worker reconnects within milliseconds)."""

_DEADLINE_SLACK = 0.005
"""Claim this long after a deadline (a timer, a foreign lease's expiry) is due, so the database's
clock has passed it too; a claim that is still early only costs another look."""


@dataclass(slots=True)
class _Running:
    lease: Lease
    scope: trio.CancelScope
    since: float
    lost: bool = False
    cancelling: bool = False
    settled: trio.Event = field(default_factory=trio.Event)
    """Set when the run starts its first activity attempt or ends: by then an activity that
    needs a transaction is counted by the gate (`TransactionGate.waiting`)."""


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    running: int
    reserved: int
    started: int
    finished: int
    leases_lost: int
    claims: int
    deferred: int
    """Wake-ups this worker left to the peer chosen for them (then claimed after the delay)."""
    peers: int
    """Live workers running the same workflows, this one included."""


@dataclass(slots=True)
class _Counters:
    started: int = 0
    finished: int = 0
    leases_lost: int = 0
    claims: int = 0
    deferred: int = 0


class Scheduler:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        hub: Hub,
        config: AppConfig,
        worker_id: str,
        channels: ChannelService,
    ) -> None:
        self.store = store
        self.channels = channels
        self._known = sorted(registry.workflows)

        self.registry = registry
        self.hub = hub
        self.config = config
        self.worker_id = worker_id
        self._running: dict[Lease, _Running] = {}
        """By lease, not instance: an instance that suspended can be woken and claimed again
        by this worker before its previous run's task has quite finished."""
        self._reserved = 0
        self._capacity = trio.Event()
        self._check_takeover = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._n = _Counters()
        self.peers = Peers(worker_id, self._known, expire_after=3 * config.member_interval)

    # -- public -------------------------------------------------------------------------
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        session = self.store.worker_session(
            self.worker_id, connect_timeout=self.config.heartbeat_interval)
        try:
            await session.ensure()  # this worker's lock is held before it claims anything
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._serve(nursery, session, task_status)
        finally:
            with trio.CancelScope(shield=True):
                await session.aclose()

    async def _serve(self, nursery: trio.Nursery, session: WorkerSession,
                     task_status: trio.TaskStatus[None]) -> None:
        nursery.start_soon(self._heartbeat_loop, session)
        nursery.start_soon(self._takeover_loop)
        nursery.start_soon(self._cancel_loop)
        nursery.start_soon(self._maintenance_loop)
        nursery.start_soon(self._channel_sweep_loop)
        await nursery.start(self._members_loop)
        await nursery.start(self._claim_loop)
        task_status.started()

    def try_reserve(self) -> bool:
        """Reserve a slot for an instance this process is about to create (eager start)."""
        if self._nursery is None or self._free() <= 0:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1
        self._signal_capacity()

    def run_reserved(self, claimed: Claimed) -> None:
        """Run an instance created already leased to this worker, using a reserved slot."""
        assert self._nursery is not None
        self._reserved -= 1
        self._spawn(claimed)

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            len(self._running),
            self._reserved,
            self._n.started,
            self._n.finished,
            self._n.leases_lost,
            self._n.claims,
            self._n.deferred,
            self.peers.count,
        )

    # -- internals ----------------------------------------------------------------------
    def _free(self) -> int:
        return self.config.max_concurrent - len(self._running) - self._reserved

    def _signal_capacity(self) -> None:
        self._capacity.set()
        self._capacity = trio.Event()

    def _spawn(self, claimed: Claimed) -> _Running:
        assert self._nursery is not None
        if claimed.previous_owner is not None:
            log.info("taking over instance %r from worker %r (its lease expired or its session "
                     "ended): now run by worker %r at epoch %d", claimed.lease.instance_id,
                     claimed.previous_owner, self.worker_id, claimed.lease.epoch)
        entry = _Running(claimed.lease, trio.CancelScope(), trio.current_time())
        self._running[claimed.lease] = entry
        self._n.started += 1
        self._nursery.start_soon(self._run_one, claimed, entry)
        return entry

    async def _run_one(self, claimed: Claimed, entry: _Running) -> None:
        done = False
        try:
            with entry.scope:
                try:
                    await run_claimed(self.store, self.registry, claimed,
                                      self.config.default_retry,
                                      determinism_guard=self.config.determinism_guard,
                                      on_attempt=entry.settled.set)
                    done = True
                except LeaseLostError as exc:  # a fenced write found it taken over
                    log.info("abandoning instance: %s", exc)
                    if not entry.lost:
                        entry.lost = True
                        self._n.leases_lost += 1
                except StorageUnavailableError as exc:
                    log.warning(
                        "instance %s interrupted by the database: %s",
                        claimed.lease.instance_id,
                        exc,
                    )
        finally:
            entry.settled.set()
            del self._running[claimed.lease]
            self._n.finished += 1
            self._signal_capacity()
            if not done and not entry.lost:
                await self._release(claimed.lease)

    async def _release(self, lease: Lease) -> None:
        """Hand an unfinished instance back (shutdown, database hiccup) so it restarts at once."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.release_timeout):
            try:
                await self.store.release(lease, now=time.time())
            except StorageUnavailableError as exc:
                # Nothing is lost: the lease expires after lease_ttl and the instance is claimed.
                log.warning(
                    "could not release %s (%s); its lease will expire", lease.instance_id, exc
                )

    async def _claim_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = 0.05
        expected: str | None = None  # the instance the last wake-up named for this worker
        with self.hub.watch(self.store.topics.work) as watch:
            task_status.started()
            while True:
                free = self._free()
                if free <= 0:
                    await self._capacity.wait()
                    continue
                room = self.store.db.gate.room
                if room is not None and room <= 0:  # activities hold (or queue for) every slot
                    await self.store.db.gate.wait_room()
                    continue
                try:
                    limit = min(free, self.config.claim_batch, room or free)
                    # one round trip: the claim, when to look again, and the history of the
                    # instance a wake-up named (on PostgreSQL)
                    claimed, expiry = await self.store.claim_and_expiry(
                        self.worker_id,
                        limit=limit,
                        lease_ttl=self.config.lease_ttl,
                        workflows=self._known,
                        expected=expected,
                    )
                    expected = None
                    self._n.claims += 1
                    started = [self._spawn(item) for item in claimed]
                    self._check_takeover.set()
                    for entry in started:  # claim more once `gate.room` counts them
                        await entry.settled.wait()
                    await trio.lowlevel.checkpoint()
                    if len(claimed) == limit:
                        continue  # there may be more
                except StorageUnavailableError as exc:
                    log.warning("claiming failed (%s); retrying in %.2fs", exc, backoff)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.config.lease_ttl)
                    continue
                backoff = 0.05
                expiry_at = None if expiry is None else (
                    trio.current_time() + max(expiry, 0.0) + _DEADLINE_SLACK)
                expected = await self._until_claim_is_due(watch, expiry_at)

    async def _until_claim_is_due(self, watch: Watch, expiry_at: float | None) -> str | None:
        """Sleep until a notification this worker should act on at once, the next known
        deadline, or the hub's own jittered fallback re-check - whichever comes first.
        Returns the instance that woke it if a notification named one chosen for it.

        A notification naming only instances that another live worker is chosen to claim
        (see ``_peers``) is left to that worker for ``peer_claim_delay``; this worker claims
        after that in case it could not. A new deadline only moves the next look earlier.
        The payload format is in ``storage.hints``.

        It returns within the hub's longest fallback wait at the latest, even if deadline
        hints keep arriving (each `Watch.wait` starts its fallback timer afresh): a waiting
        worker claims at least that often, and so learns of every deadline that was not
        announced to it (``WaitStore.deadline_hint_horizon``)."""
        deferred_at: float | None = None
        recheck_at = trio.current_time() + self.hub.config.longest_fallback
        while True:
            due = min(t for t in (expiry_at, deferred_at, recheck_at) if t is not None)
            timeout = max(due - trio.current_time(), 0.0)
            wakeup = await watch.wait(timeout=timeout)
            if not wakeup.keys:
                return None  # a gap, the fallback or a deadline
            for key in wakeup.keys:
                if key.startswith(hints.INSTANCE):
                    if self.peers.chooses_me(key):
                        return key.removeprefix(hints.INSTANCE)
                    if deferred_at is None:
                        self._n.deferred += 1
                        deferred_at = trio.current_time() + self.config.peer_claim_delay
                elif (at := hints.parse_deadline(key)) is not None:
                    at = trio.current_time() + max(at - time.time(), 0.0) + _DEADLINE_SLACK
                    expiry_at = at if expiry_at is None else min(expiry_at, at)
                else:
                    return None  # work for every worker

    async def _members_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep ``peers`` current: announce this worker on start, every ``member_interval``
        and whenever a new peer appears; withdraw on a clean stop."""
        topic = self.store.topics.members
        with self.hub.watch(topic) as watch:
            try:
                await self._announce(joining=True)
                task_status.started()
                next_at = trio.current_time() + self.config.member_interval
                while True:
                    wakeup = await watch.wait(
                        timeout=max(next_at - trio.current_time(), 0.0))
                    now = trio.current_time()
                    self.peers.expire(now)
                    newcomers = [k for k in wakeup.keys if self.peers.heard(k, now)]
                    if wakeup.gap or newcomers or now >= next_at:
                        await self._announce(joining=True)
                        next_at = now + self.config.member_interval
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(
                        self.config.release_timeout):
                    await self._announce(joining=False)

    async def _announce(self, *, joining: bool) -> None:
        try:
            async with self.store.db.transaction() as tx:
                await tx.notify(self.store.topics.members,
                                self.peers.announcement(joining=joining))
        except StorageUnavailableError as exc:
            log.warning("could not announce this worker (%s); will try again", exc)

    async def _heartbeat_loop(self, session: WorkerSession) -> None:
        """Renew every ``heartbeat_interval``; between renewals, watch the session so that a
        dropped connection is opened again (with this worker's lock) at once. After a failure,
        try again in 50 ms, doubling up to the interval."""
        interval = self.config.heartbeat_interval
        delay, retry, failing_since = interval, _FIRST_RETRY, None
        while True:
            started = trio.current_time()
            try:
                await session.watch(started + delay)  # reconnects at once if it drops
                started = trio.current_time()
                if not self._running:  # no lease to renew: only keep the session (and lock)
                    await session.ensure()
                    held = None
                else:
                    held = await self.store.renew(self.worker_id, session=session,
                                                  lease_ttl=self.config.lease_ttl)
            except StorageUnavailableError as exc:
                if failing_since is None:
                    failing_since = started
                    log.warning("lease renewal failed (%s); retrying (fenced writes keep "
                                "ownership safe)", exc)
                await trio.sleep(retry)
                delay, retry = 0.0, min(retry * 2, interval)
                continue
            delay = interval
            if failing_since is not None:
                log.warning("worker session back after %.2fs", started - failing_since)
            retry, failing_since = _FIRST_RETRY, None
            if held is None:
                continue
            self._check_takeover.set()
            ours = set(self._running)
            for entry in list(self._running.values()):
                iid, epoch = entry.lease.instance_id, entry.lease.epoch
                now_held = held.get(iid)
                if now_held == epoch or entry.since >= started:
                    continue
                if now_held is not None and Lease(iid, self.worker_id, now_held) in ours:
                    continue  # a run that suspended and is ending; a newer run of ours has it
                self._lose(entry)

    async def _takeover_loop(self) -> None:
        """Expire the leases of workers whose session ended, so they are claimed at once: every
        ``takeover_check_interval`` while other workers hold running leases, else once after
        each claim and renewal of this worker (an idle worker with no other worker busy asks
        only when it claims). A worker counts as gone when two checks in a row find no
        session of it, so one whose connection dropped and came straight back keeps its
        leases. Returns where the dialect cannot tell (the TTL then applies)."""
        foreign, suspects = 0, list[str]()
        while True:
            if not foreign:
                await self._check_takeover.wait()
            self._check_takeover = trio.Event()
            try:
                found = await self.store.take_over_dead(self.worker_id,
                                                        grace=self.config.lease_ttl,
                                                        suspects=suspects)
            except StorageUnavailableError:  # others report it; look again soon
                found = (foreign, 0, [])
            if found is None:
                return
            foreign, taken, suspects = found
            if taken:
                log.debug("expired %d lease(s) of workers whose session ended", taken)
            interval = self.config.takeover_check_interval
            # a suspect is confirmed sooner: a dropped session is back within milliseconds
            await trio.sleep(min(interval, _CONFIRM_AFTER) if suspects else interval)

    async def _maintenance_loop(self) -> None:
        """Delete expired events, consumed messages and (with ``instance_retention``) old
        finished instances and archived runs, in bounded batches, now and then."""
        while True:
            try:
                while await self.store.waits.cleanup(retention=self.config.event_retention) > 0:
                    await trio.lowlevel.checkpoint()
                while await self._cleanup_channels() > 0:
                    await trio.lowlevel.checkpoint()
                await self._purge_old_instances()
            except StorageUnavailableError as exc:
                log.warning("event cleanup failed (%s); will try again later", exc)
            await trio.sleep(self.config.maintenance_interval)

    async def _purge_old_instances(self) -> None:
        retention, batch = self.config.instance_retention, self.config.retention_batch
        if retention is None:
            return
        before = time.time() - retention
        while await self.store.purge_finished(before=before, batch=batch) == batch:
            await trio.lowlevel.checkpoint()
        while await self.store.purge_runs(before=before, batch=batch) == batch:
            await trio.lowlevel.checkpoint()

    async def _channel_sweep_loop(self) -> None:
        """Every fallback interval, re-check suspended receivers of recently published channels:
        a lost wake-up delays a message but never strands it."""
        since = time.time()
        while True:
            await trio.sleep(self.config.fallback_interval)
            started = time.time()
            try:
                woken = await self.channels.sweep(since=since - 1.0)
            except StorageUnavailableError as exc:
                log.warning("channel sweep failed (%s); will try again later", exc)
                continue
            if woken:
                log.info("channel sweep woke %d receiver(s) a notification had missed", woken)
            since = started

    async def _cleanup_channels(self) -> int:
        async with self.store.db.transaction() as tx:
            return await self.channels.engine.cleanup_tx(
                tx, now=time.time(), retention=self.config.channel_retention
            )

    async def _cancel_loop(self) -> None:
        with self.hub.watch(self.store.topics.cancel) as watch:
            while True:
                wakeup = await watch.wait()
                cancelled = set(wakeup.keys)
                for entry in list(self._running.values()):
                    if entry.lease.instance_id in cancelled and not entry.cancelling:
                        # stop it now; it is released and claimed again, and its replay runs
                        # the compensations and ends it as cancelled
                        entry.cancelling = True
                        entry.scope.cancel()

    def _lose(self, entry: _Running) -> None:
        if not entry.lost:
            entry.lost = True
            self._n.leases_lost += 1
            entry.scope.cancel()
