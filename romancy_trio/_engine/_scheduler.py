"""The nursery-structured scheduler: claim, lease, run, renew, release, take over.

One nursery owns every task: the claim loop, the heartbeat, the takeover check, the cancel
listener, placement, housekeeping (`._housekeeping`) and one task per running instance, each
in its own cancel scope. Claims are bounded ``SKIP LOCKED`` batches; the claim loop sleeps until
a notification, the earliest foreign lease expiry or the slow fallback - it never polls on a
short fixed timer, and it claims nothing while activities wait for a transaction slot
(`TransactionGate`): work this worker cannot serve stays claimable.

The heartbeat renews all this worker's leases in one statement on the worker's own session
(`Store.worker_session`: on PostgreSQL a connection outside the pool holding this worker's
advisory lock, reopened as soon as it drops), so activities holding every pooled connection
cannot delay it; it cancels any run whose lease it no longer holds (but for one in the write
that lets its instance go - a finish or suspension that may have committed just before the
renewal: that fenced write tells whether it was lost). What it lost (a renewal no
longer returning a lease, a refused write, a run that gave up waiting for the database) is said
in one line per renewal, however many instances (`._leases`). While other workers hold
running leases, the takeover check runs every ``takeover_check_interval`` and expires the
leases of workers found without a session twice in a row, so a crashed worker's instances are
claimed within about that interval instead of the lease TTL.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import trio
import trio.lowlevel

from romancy_notify import Hub

from .. import _clock
from .._channels import ChannelService
from .._config import AppConfig
from .._definitions import Registry
from .._errors import LeaseLostError, StorageUnavailableError
from ..storage import Claimed, Lease, Store, WorkerSession, hints
from ._claimwait import DEADLINE_SLACK, ClaimWaiter
from ._dbprobe import DatabaseProbe
from ._hooks import NO_HOOKS, HookDispatcher
from ._hosts import ActivityHosts, open_activity_hosts
from ._housekeeping import channel_sweep_loop, maintenance_loop
from ._leases import LeaseReport
from ._notes import lease_lost
from ._outages import Outages
from ._packing import pack_loop, watch_taker
from ._peers import Peers
from ._placement import long_lived, place_long_lived
from ._resident import ResidentStates
from ._runner import run_claimed
from ._stats import SchedulerStatistics as SchedulerStatistics
from ._stats import _Counters

log = logging.getLogger("romancy_trio.scheduler")

_FIRST_RETRY = 0.05
"""Seconds before the first retry of a failed renewal; doubled per failure up to the heartbeat
interval, so a short outage costs little and a long one sends few attempts."""

_CONFIRM_AFTER = 0.1
"""Seconds between the check that finds a worker without a session and the one that takes its
instances over (the worker session of a live worker reconnects within milliseconds)."""

_RELEASE_RETRY_FIRST, _RELEASE_RETRY_MAX = 0.05, 0.25
"""Pauses between attempts of a release the database could not take (doubling, capped)."""

_SKIPPED_MAX = 0.5
"""Longest wait between claims that take nothing although an instance is claimable (the
claim skipped it: another transaction held it locked, for milliseconds as a rule). The first
look again is `DEADLINE_SLACK` later, doubled while it stays so."""


@dataclass(slots=True)
class _Running:
    lease: Lease
    scope: trio.CancelScope
    since: float
    lost: bool = False
    cancelling: bool = False
    letting_go: bool = False
    """In (or past) the write that lets the instance go itself (`run_claimed`): a renewal
    that no longer returns it means nothing (that fenced write says whether it was lost)."""
    handback: str | None = None
    """The peer this instance is being handed to (placement), at its next suspension point."""
    claimed: Claimed | None = None
    settled: trio.Event = field(default_factory=trio.Event)
    """Set when the run starts its first activity attempt or ends: by then an activity that
    needs a transaction is counted by the gate (`TransactionGate.waiting`)."""

    def mark_letting_go(self, ending: bool) -> None:
        self.letting_go = ending


class Scheduler:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        hub: Hub,
        config: AppConfig,
        worker_id: str,
        channels: ChannelService,
        hooks: HookDispatcher = NO_HOOKS,
    ) -> None:
        self.store = store
        self.channels = channels
        self.hooks = hooks
        self._known = sorted(registry.workflows)
        self.registry = registry
        self.hub = hub
        self.config = config
        self.worker_id = worker_id
        self._running: dict[Lease, _Running] = {}
        """By lease, not instance: an instance that suspended can be woken and claimed again
        by this worker before its previous run's task has quite finished."""
        self.resident = ResidentStates()  # live states of suspended runs (issue #22)
        self._reserved = 0
        self._capacity = trio.Event()
        self._check_takeover = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._hosts: ActivityHosts | None = None
        self._n = _Counters()
        self._rng = random.Random()
        self._db_probe = DatabaseProbe(lambda: self.store.db.fetchone("SELECT 1"),
                                       lambda: hub.config.reconnect_delays(self._rng))
        self.outages = Outages(self.wait_for_database, rng=self._rng,
                               longest_backoff=hub.config.longest_fallback)
        """How this worker's other loops (compose services, housekeeping) ride out an outage."""
        self.peers = Peers(worker_id, self._known, expire_after=3 * config.member_interval,
                           placement=config.placement)
        self._report = LeaseReport(worker_id, config.lease_ttl, trio.current_time())

    # -- public -------------------------------------------------------------------------
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        session = self.store.worker_session(  # bounded: a renewal past the lease is no use
            self.worker_id, connect_timeout=self.config.heartbeat_interval,
            statement_timeout=self.config.lease_ttl)
        try:
            await session.ensure()  # this worker's lock is held before it claims anything
            async with open_activity_hosts(self.config.activity_threads) as hosts, \
                    trio.open_nursery() as nursery:
                self._hosts = hosts
                self._nursery = nursery
                await self._serve(nursery, session, task_status)
        finally:
            self.resident.clear()  # their workflows' coroutines closed, not left to the GC
            with trio.CancelScope(shield=True):
                await session.aclose()

    async def _serve(self, nursery: trio.Nursery, session: WorkerSession,
                     task_status: trio.TaskStatus[None]) -> None:
        nursery.start_soon(self._heartbeat_loop, session)
        nursery.start_soon(self._takeover_loop)
        nursery.start_soon(self._cancel_loop)
        nursery.start_soon(maintenance_loop, self.store, self.channels, self.config,
                           self.outages)
        nursery.start_soon(channel_sweep_loop, self.channels, self.config, self.outages)
        if self.peers.pack:
            nursery.start_soon(pack_loop, self.peers, self.hub, self.store.topics.work,
                               self._room, lambda: self._announce(joining=True))
            if self.store.q.worker_alive is not None:  # else the standby hears the wake-ups
                nursery.start_soon(watch_taker, self.peers, self.store.worker_alive,
                                   self.config.takeover_check_interval)
        elif self.config.rebalance_after is not None:
            nursery.start_soon(
                place_long_lived, self.peers, lambda: self._running.values(),
                lambda: self._announce(joining=True), self.config.rebalance_after,
                self.config.member_interval)
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
            storage_outages=self.outages.count,
            peer_claimed=self._n.peer_claimed,
            role=self.peers.role(),
        )

    # -- internals ----------------------------------------------------------------------
    def _free(self) -> int:
        return self.config.max_concurrent - len(self._running) - self._reserved

    def _room(self) -> int:
        """Instances this worker could claim now: free slots, and pooled transactions free."""
        room = self.store.db.gate.room
        return self._free() if room is None else min(self._free(), room)

    def _signal_capacity(self) -> None:
        self._capacity.set()
        self._capacity = trio.Event()

    def _spawn(self, claimed: Claimed) -> _Running:
        assert self._nursery is not None
        if claimed.previous_owner is not None:
            log.info("taking over instance %r from worker %r (its lease expired or its session "
                     "ended): now run by worker %r at epoch %d", claimed.lease.instance_id,
                     claimed.previous_owner, self.worker_id, claimed.lease.epoch)
        entry = _Running(claimed.lease, trio.CancelScope(), trio.current_time(), claimed=claimed)
        self._running[claimed.lease] = entry
        self._n.started += 1
        self._nursery.start_soon(self._run_one, claimed, entry)
        return entry

    async def _run_one(self, claimed: Claimed, entry: _Running) -> None:
        done = interrupted = gave_up = False
        try:
            with entry.scope:
                try:
                    assert self._hosts is not None
                    handed = await run_claimed(
                        self.store, self.registry, claimed, self.config.default_retry,
                        hosts=self._hosts, determinism_guard=self.config.determinism_guard,
                        handing_back=lambda: entry.handback is not None,
                        on_attempt=entry.settled.set, hooks=self.hooks,
                        resident=self.resident, letting_go=entry.mark_letting_go)
                    done = not handed
                except LeaseLostError as exc:  # a fenced write found it taken over
                    log.debug("abandoning instance: %s", exc)
                    self._lose(entry, "write refused")  # said once for all (`LeaseReport`)
                except StorageUnavailableError as exc:  # one line per outage, not per instance
                    if not self._db_probe.probing:
                        log.warning("running instances interrupted by the database (%s); each "
                                    "is handed back as soon as it answers", exc)
                    log.debug("instance %s interrupted: %s", claimed.lease.instance_id, exc)
                    # Released now, it would stay leased until its lease expired (the release
                    # fails too): wait for the database first, then release it for this worker
                    # to claim again at once (it replays from its history). No answer within
                    # a lease: the lease has lapsed; it is left to expire (said once).
                    with trio.move_on_after(self.config.lease_ttl):
                        await self.wait_for_database()
                        interrupted = True
                    gave_up = not interrupted
        finally:
            entry.settled.set()
            del self._running[claimed.lease]
            self._n.finished += 1
            self._signal_capacity()
            if gave_up and not entry.lost:
                self._report.lost(claimed.lease.instance_id, "left to expire")
            elif not done and not entry.lost:
                hint = ""  # shutdown: for every worker
                if entry.handback is not None:
                    log.info("handing instance %s back for worker %s (placement)",
                             claimed.lease.instance_id, entry.handback)
                    hint = hints.placed_hint(claimed.lease.instance_id, entry.handback)
                elif interrupted:  # claimed again here at once, no herd of claims
                    hint = hints.placed_hint(claimed.lease.instance_id, self.worker_id)
                await self._release(claimed.lease, hint)

    async def wait_for_database(self) -> None:
        """Return once the database answers a query again (`DatabaseProbe`)."""
        assert self._nursery is not None
        await self._db_probe.wait(self._nursery)

    async def _release(self, lease: Lease, hint: str = "") -> None:
        """Hand an unfinished instance back (shutdown, database hiccup, placement) so it
        restarts at once. A release the database cannot take yet (a failover: no writable
        server for a moment) is tried again, a little later each time, within
        ``release_timeout``: given up, the instance would wait for its lease to expire and be
        taken over by another worker although this one lives."""
        failed: StorageUnavailableError | None = None
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.release_timeout):
            pause = _RELEASE_RETRY_FIRST
            while True:
                try:
                    if not await self.store.release(lease, now=_clock.now(), hint=hint):
                        self._n.leases_lost += 1  # taken over meanwhile (`LeaseReport`)
                        self._report.lost(lease.instance_id, "write refused")
                    return
                except StorageUnavailableError as exc:
                    failed = exc
                    await trio.sleep(pause)
                    pause = min(2 * pause, _RELEASE_RETRY_MAX)
        if failed is not None:  # nothing is lost: the lease expires, the instance is claimed
            log.warning("could not release %s (%s); its lease will expire",
                        lease.instance_id, failed)

    async def _claim_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        expected: str | None = None  # the instance the last wake-up named for this worker
        backoff = 0.0  # between claims that fail although the database answers a probe
        skipped = 0.0  # between claims that take nothing although something is claimable
        with self.hub.watch(self.store.topics.work) as watch:
            waiter = ClaimWaiter(watch, self.peers, self._n,
                                 peer_claim_delay=self.config.peer_claim_delay,
                                 longest_fallback=self.hub.config.longest_fallback,
                                 any_unclaimed=self.store.any_unclaimed)
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
                        expected=None if expected in self.resident else expected,
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
                    log.warning("claiming failed (%s); retrying when the database answers", exc)
                    await self.wait_for_database()
                    await trio.sleep(backoff)  # 0 the first time: claim as soon as it answers
                    backoff = min(max(2 * backoff, 0.05), self.config.lease_ttl)
                    continue
                backoff = 0.0
                if claimed or expiry is None or expiry > 0:
                    skipped = 0.0
                else:  # claimable but locked when the claim looked (`Queries.next_expiry`)
                    skipped = min(max(2 * skipped, DEADLINE_SLACK), _SKIPPED_MAX)
                    expiry = skipped
                expiry_at = None if expiry is None else (
                    trio.current_time() + max(expiry, 0.0) + DEADLINE_SLACK)
                expected = await waiter.until_claim_is_due(expiry_at)

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
            note = self.peers.announcement(joining=joining, load=self._load())
            await self.store.db.run_transaction(
                lambda tx: tx.notify(self.store.topics.members, note))
        except StorageUnavailableError as exc:
            log.warning("could not announce this worker (%s); will try again", exc)

    def _load(self) -> int:
        return len(long_lived(self._running.values(), self.config.rebalance_after))

    async def _heartbeat_loop(self, session: WorkerSession) -> None:
        """Renew every ``heartbeat_interval``; between renewals, watch the session so that a
        dropped connection is opened again (with this worker's lock) at once. After a failure,
        try again in 50 ms, doubling up to the interval."""
        interval = self.config.heartbeat_interval
        delay, retry = interval, _FIRST_RETRY
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
                self._report.failing(exc)
                await trio.sleep(retry)
                delay, retry = 0.0, min(retry * 2, interval)
                continue
            delay, retry = interval, _FIRST_RETRY
            if held is None:
                self._report.renewed(started)
                continue
            self._check_takeover.set()
            ours = set(self._running)
            for entry in list(self._running.values()):
                iid, epoch = entry.lease.instance_id, entry.lease.epoch
                now_held = held.get(iid)
                if now_held == epoch or entry.since >= started or entry.letting_go:
                    continue  # (letting go: its own finish or suspension may have committed)
                if now_held is not None and Lease(iid, self.worker_id, now_held) in ours:
                    continue  # a run that suspended and is ending; a newer run of ours has it
                self._lose(entry, "taken over")
            self._report.renewed(started)  # what was lost: one line

    async def _takeover_loop(self) -> None:
        """Expire the leases of workers whose session ended, so they are claimed at once: while
        other workers hold running leases, every ``takeover_check_interval`` times the number
        of the other live workers (jittered), else once after
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
            # each worker every interval x (live workers - 1), jittered: once one dies, the
            # others together still check about every interval, and a large group does not
            # read the server's whole lock table many times an interval; a suspect is
            # confirmed sooner: a dropped session is back within milliseconds
            interval = self.config.takeover_check_interval
            spread = max(1, self.peers.count - 1) * self._rng.uniform(0.5, 1.5)
            await trio.sleep(min(interval, _CONFIRM_AFTER) if suspects else interval * spread)

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

    def _lose(self, entry: _Running, how: str) -> None:
        if not entry.lost:
            entry.lost = True
            self._n.leases_lost += 1
            self._report.lost(entry.lease.instance_id, how)
            lease_lost(self.hooks, entry.claimed)
            entry.scope.cancel()
