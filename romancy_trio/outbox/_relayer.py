"""The relayer: delivers outbox rows as CloudEvents over HTTP, at least once, with backoff.

One nursery owns the claim loop and one task per event in flight. The loop claims at most as many
due rows as it has free delivery slots (so a claimed row never waits locally while its claim
runs out), then sleeps until a NOTIFY on ``romancy_outbox``, a freed slot or new retry, the
earliest due row, the next retention cleanup, or the fallback - whichever comes first.

Every settlement is fenced by the claim (``claimed_by`` and ``claim_epoch``): a relayer whose
claim expired and was taken over can never mark the row. Delivery is at least once (a relayer
that dies after the POST but before marking leaves the row to be sent again once its claim
expires); the stable CloudEvent id lets receivers deduplicate.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

import httpx
import trio

from romancy_notify import Hub, Watch

from .._engine._dbprobe import DatabaseProbe
from .._engine._outages import Outages
from .._errors import StorageUnavailableError
from .._redact import redact_url
from ..storage import Database
from ._store import TOPIC_OUTBOX, ClaimedEvent, OutboxEvent, OutboxStatus, OutboxStore

log = logging.getLogger("romancy_trio.outbox")

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
WORKER_HEADER = "X-Romancy-Worker"
_MAX_ERROR = 500  # characters of last_error kept per row
_DUE_MARGIN = 0.02  # seconds added to a due time so the row is surely due when we look


@dataclass(frozen=True, slots=True)
class RelayerConfig:
    """Every interval, bound and backoff of a relayer. Durations are in seconds."""

    sink_url: str
    """Where events are POSTed (structured mode, ``application/cloudevents+json``)."""
    batch_size: int = 50
    """Most rows claimed by one statement (never more than the free delivery slots)."""
    max_attempts: int = 10
    """Attempts per event; after the last failed one the row is ``failed`` and kept."""
    initial_backoff: float = 0.5
    backoff_coefficient: float = 2.0
    max_backoff: float = 60.0
    backoff_jitter: float = 0.2
    """Each retry delay is drawn uniformly within +/- this fraction of
    ``min(max_backoff, initial_backoff * backoff_coefficient ** (failures - 1))``."""
    claim_ttl: float = 30.0
    """A claimed row whose relayer died becomes claimable again after this long."""
    request_timeout: float = 10.0
    """Bound on one whole POST (connect, send, response); must be less than ``claim_ttl``."""
    concurrency: int = 8
    """Most POSTs in flight at once."""
    fallback_interval: float = 30.0
    """Slow re-check of the table in case a notification was lost."""
    retention: float = 7 * 24 * 3600.0
    """Delivered rows are deleted after this long (failed rows are kept)."""
    cleanup_interval: float = 60.0
    cleanup_batch: int = 1000
    """Most delivered rows deleted by one statement."""
    release_timeout: float = 2.0
    """On shutdown, how long to try to hand claimed rows back before leaving them to expire."""
    max_response_bytes: int = 64 * 1024
    """Most bytes of a response body read (the rest is discarded with the connection)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers (e.g. authorization)."""

    def __post_init__(self) -> None:
        try:
            url = httpx.URL(self.sink_url)
        except httpx.InvalidURL as exc:
            shown = redact_url(self.sink_url)
            raise ValueError(f"RelayerConfig.sink_url {shown!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"RelayerConfig.sink_url must be an http(s) URL, not {redact_url(self.sink_url)!r}"
            )
        for name in ("batch_size", "max_attempts", "concurrency", "cleanup_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RelayerConfig.{name} must be an int >= 1, not {value!r}")
        for name in (
            "initial_backoff",
            "max_backoff",
            "claim_ttl",
            "request_timeout",
            "fallback_interval",
            "retention",
            "cleanup_interval",
            "release_timeout",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"RelayerConfig.{name} must be finite and > 0, not {value!r}")
        if not self.backoff_coefficient >= 1 or not 0 <= self.backoff_jitter < 1:
            raise ValueError("backoff_coefficient must be >= 1 and backoff_jitter in [0, 1)")
        if self.claim_ttl <= self.request_timeout:
            raise ValueError("RelayerConfig.claim_ttl must be longer than request_timeout")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def retry_delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...)."""
        try:
            base = self.initial_backoff * self.backoff_coefficient ** (failures - 1)
        except OverflowError:
            base = self.max_backoff
        jitter = self.backoff_jitter
        return min(self.max_backoff, base) * rng.uniform(1 - jitter, 1 + jitter)


@dataclass(frozen=True, slots=True)
class RelayerStatistics:
    """``delivered``/``retried``/``failed``: settlements by this relayer (``failed``: rows that
    used their last attempt); ``lost_claims``: settlements that found their claim taken over."""

    in_flight: int
    delivered: int
    retried: int
    failed: int
    lost_claims: int
    claims: int
    purged: int
    storage_outages: int = 0
    """Database outages the claim loop rode out (waited for the database, then went on)."""


@dataclass(slots=True)
class _Counters:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lost_claims: int = 0
    claims: int = 0
    purged: int = 0


class Relayer:
    """Delivers the outbox of ``db`` to ``config.sink_url``. Run :meth:`serve` in a nursery."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        config: RelayerConfig,
        *,
        worker_id: str,
        topic: str = TOPIC_OUTBOX,
        rng: random.Random | None = None,
    ) -> None:
        self.store = OutboxStore(db)
        self.topic = topic
        self.hub = hub
        self.config = config
        self.worker_id = worker_id
        self._rng = rng or random.Random()
        self._in_flight = 0
        self._changed = trio.Event()
        self._next_cleanup = -math.inf
        self._n = _Counters()
        self._wait_for_database: Callable[[], Awaitable[None]] = trio.lowlevel.checkpoint
        """Returns once the database answers again (a probe in the claim loop's nursery)."""
        self._outages = Outages(lambda: self._wait_for_database(), rng=self._rng, logger=log,
                                longest_backoff=config.fallback_interval)

    def statistics(self) -> RelayerStatistics:
        n = self._n
        return RelayerStatistics(
            self._in_flight, n.delivered, n.retried, n.failed, n.lost_claims, n.claims, n.purged,
            storage_outages=self._outages.count,
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        headers = httpx.Headers(cfg.headers)  # ours replace the caller's, case-insensitively
        headers["Content-Type"] = CONTENT_TYPE
        headers[WORKER_HEADER] = self.worker_id
        limits = httpx.Limits(
            max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency
        )
        async with (
            httpx.AsyncClient(
                headers=headers, timeout=cfg.request_timeout, limits=limits
            ) as client,
            trio.open_nursery() as nursery,
        ):
            with self.hub.watch(self.topic) as watch:
                task_status.started()
                await self._claim_loop(watch, nursery, client)

    # -- the loop -------------------------------------------------------------------------
    async def _claim_loop(
        self, watch: Watch, nursery: trio.Nursery, client: httpx.AsyncClient
    ) -> None:
        probe = DatabaseProbe(lambda: self.store.db.fetchone("SELECT 1"),
                              lambda: self.hub.config.reconnect_delays(self._rng))
        self._wait_for_database = partial(probe.wait, nursery)

        async def claim() -> float:
            await self._maybe_cleanup()
            return await self._claim_due(nursery, client)

        while True:
            changed = self._changed  # a delivery ending from now on ends the next wait
            timeout = await self._outages.ride_out("outbox relayer", claim)
            if timeout > 0:
                await self._wait(watch, changed, timeout)

    async def _claim_due(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> float:
        """Start deliveries for due rows; return how long to sleep before looking again."""
        cfg = self.config
        timeout = min(cfg.fallback_interval, self._next_cleanup - trio.current_time())
        free = cfg.concurrency - self._in_flight
        if free <= 0:
            return timeout  # a delivery ending wakes the loop
        limit = min(cfg.batch_size, free)
        claimed = await self.store.claim(self.worker_id, limit=limit, ttl=cfg.claim_ttl)
        self._n.claims += 1
        for item in claimed:
            self._in_flight += 1
            nursery.start_soon(self._deliver, client, item)
        if len(claimed) == limit:
            return 0.0  # there may be more due
        due = await self.store.next_due()
        if due is not None:
            timeout = min(timeout, max(due, 0.0) + _DUE_MARGIN)
        return timeout

    async def _wait(self, watch: Watch, changed: trio.Event, timeout: float) -> None:
        """Until a notification, a local change (slot freed, retry scheduled) or ``timeout``."""
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_wait_then_cancel, watch, nursery.cancel_scope)
                await changed.wait()
                nursery.cancel_scope.cancel()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _maybe_cleanup(self) -> None:
        now = trio.current_time()
        if now < self._next_cleanup:
            return
        cfg = self.config
        purged = await self.store.purge_delivered(retention=cfg.retention, limit=cfg.cleanup_batch)
        self._n.purged += purged
        # a full batch: more may be old enough, purge again on the next turn of the loop
        self._next_cleanup = now if purged >= cfg.cleanup_batch else now + cfg.cleanup_interval

    # -- one delivery -------------------------------------------------------------------------
    async def _deliver(self, client: httpx.AsyncClient, claimed: ClaimedEvent) -> None:
        settled = retry = False
        try:
            error = await self._post(client, claimed.event)
            if error is None:
                if await self.store.delivered(claimed, self.worker_id):
                    self._n.delivered += 1
                else:
                    self._lost(claimed)
            else:
                retry = await self._attempt_failed(claimed, error)
            settled = True
        except StorageUnavailableError as exc:
            settled = True  # nothing is lost: the claim expires and the row is sent again
            log.warning("could not settle outbox event %s: %s", claimed.event.event_id, exc)
        finally:
            if not settled:  # cancelled (shutdown): hand the row back for another relayer
                await self._release(claimed)
            saturated = self._in_flight >= self.config.concurrency
            self._in_flight -= 1
            if saturated or retry or not settled:
                self._signal()

    async def _attempt_failed(self, claimed: ClaimedEvent, error: str) -> bool:
        """Record a failed attempt; True if the row is to be retried."""
        failures = claimed.attempts + 1
        status = await self.store.attempt_failed(
            claimed,
            self.worker_id,
            error=error[:_MAX_ERROR],
            delay=self.config.retry_delay(failures, self._rng),
            max_attempts=self.config.max_attempts,
        )
        event_id = claimed.event.event_id
        if status is None:
            self._lost(claimed)
        elif status is OutboxStatus.FAILED:
            self._n.failed += 1
            log.warning("outbox event %s failed after %d attempts: %s", event_id, failures, error)
        else:
            self._n.retried += 1
            log.info(
                "outbox event %s attempt %d failed (%s); will retry", event_id, failures, error
            )
        return status is OutboxStatus.PENDING

    def _lost(self, claimed: ClaimedEvent) -> None:
        self._n.lost_claims += 1
        log.info("claim on outbox event %s expired and was taken over", claimed.event.event_id)

    async def _release(self, claimed: ClaimedEvent) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.release_timeout):
            try:
                await self.store.release(claimed, self.worker_id)
            except StorageUnavailableError as exc:
                log.warning("could not release outbox event (%s); its claim will expire", exc)

    async def _post(self, client: httpx.AsyncClient, event: OutboxEvent) -> str | None:
        """POST one event: None if the sink took it (2xx), else why not."""
        timeout = self.config.request_timeout
        with trio.move_on_after(timeout):
            try:
                async with client.stream(
                    "POST", self.config.sink_url, content=event.to_json()
                ) as response:
                    detail = await self._read_bounded(response)
                    if response.is_success:
                        return None
                    return f"HTTP {response.status_code}: {detail}"
            except httpx.HTTPError as exc:  # transport errors, timeouts, protocol errors
                return f"{type(exc).__name__}: {exc}"
        return f"no response within {timeout}s"

    async def _read_bounded(self, response: httpx.Response) -> str:
        """Read at most ``max_response_bytes``; return the start of the body (for last_error)."""
        head = b""
        seen = 0
        async for chunk in response.aiter_raw():
            if len(head) < _MAX_ERROR:
                head += chunk[: _MAX_ERROR - len(head)]
            seen += len(chunk)
            if seen >= self.config.max_response_bytes:
                break
        return head.decode("utf-8", "replace")


async def _wait_then_cancel(watch: Watch, scope: trio.CancelScope) -> None:
    await watch.wait()
    scope.cancel()


async def run_relayer(
    db: Database,
    hub: Hub,
    config: RelayerConfig,
    *,
    worker_id: str,
    topic: str = TOPIC_OUTBOX,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Deliver the outbox until cancelled: ``await nursery.start(run_relayer, db, hub, cfg, ...)``.

    ``topic``: the one writers announce new rows on (``ActivityContext.outbox_topic``); ``hub``
    must serve it.
    """
    relayer = Relayer(db, hub, config, worker_id=worker_id, topic=topic)
    await relayer.serve(task_status=task_status)
