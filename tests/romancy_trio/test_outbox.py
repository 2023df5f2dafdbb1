"""The transactional outbox and its relayer, against a real HTTP sink (hypercorn on 127.0.0.1)."""

from __future__ import annotations

import inspect
import itertools
import json
import math
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from romancy_notify import Hub, NotifyConfig, open_pg_hub
from romancy_trio import (
    ActivityContext,
    ActivityFailedError,
    App,
    InvalidInputError,
    RetryPolicy,
    WorkflowContext,
    activity,
    open_app,
    outbox,
    workflow,
)
from romancy_trio.outbox import OutboxStatus, Relayer, RelayerConfig, default_event_id, outbox_rows
from romancy_trio.outbox._store import ClaimedEvent, OutboxStore, make_event, send_event_tx

from ._waits import failing_if_stuck
from .conftest import Backend
from .outbox_relayer_proc import outbox_topic, relayer_process

FAST = dict(initial_backoff=0.05, max_backoff=0.2, request_timeout=20.0, claim_ttl=60.0)
Behaviour = Callable[[dict[str, Any], int], int | Awaitable[int]]



# -- a real HTTP sink ----------------------------------------------------------------------
@dataclass
class Request:
    event: dict[str, Any]
    headers: dict[str, str]
    status: int
    start: float
    end: float


@dataclass
class Sink:
    """An ASGI app recording every POSTed CloudEvent and the interval it was handled in."""

    behaviour: Behaviour = lambda event, attempt: 200
    requests: list[Request] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)

    def ok(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        start, body, more = trio.current_time(), b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        event = json.loads(body)
        self.attempts[event["id"]] += 1
        status = await _value(self.behaviour(event, self.attempts[event["id"]]))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"nope"})
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Request(event, headers, status, start, trio.current_time()))


@asynccontextmanager
async def open_sink(sink: Sink) -> AsyncIterator[str]:
    config = HyperConfig.from_mapping({"bind": ["127.0.0.1:0"], "graceful_timeout": 0.1})
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, sink, config))
        yield f"{binds[0]}/events"
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def relaying(
    app: App, sink_url: str, hub: Hub | None = None, **overrides: Any
) -> AsyncIterator[Relayer]:
    config = RelayerConfig(sink_url, **{**FAST, **overrides})
    topic = outbox_topic(app.store.topics)
    relayer = Relayer(app.store.db, hub or app.hub, config, worker_id="test-relayer", topic=topic)
    async with trio.open_nursery() as nursery:
        await nursery.start(relayer.serve)
        yield relayer
        nursery.cancel_scope.cancel()


async def until(predicate: Callable[[], Any], timeout: float = 20) -> None:
    """Poll until ``predicate()`` (a bool, or an awaitable of one) is true."""
    with trio.fail_after(timeout):
        while not await _value(predicate()):
            await trio.sleep(0.02)


async def _value(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- workflows that send events --------------------------------------------------------------
ATTEMPTS: Counter[str] = Counter()  # attempts of `emit` per instance


@activity(retry=RetryPolicy(max_attempts=2, initial_interval=0.01))
async def emit(ctx: ActivityContext, count: int, fails: int) -> list[str]:
    """Sends ``count`` events; its first ``fails`` attempts then raise (and roll back)."""
    ATTEMPTS[ctx.instance_id] += 1
    ids = []
    for n in range(count):
        data, ext = {"n": n, "text": "nul\x00inside", "iid": ctx.instance_id}, {"seqno": n}
        ids.append(await ctx.send_event("test.emitted", data, subject=f"item-{n}", extensions=ext))
    if ATTEMPTS[ctx.instance_id] <= fails:
        raise RuntimeError("failed after send_event")
    return ids


@activity(transactional=False, retry=RetryPolicy(max_attempts=1))
async def emit_outside(ctx: ActivityContext) -> str:
    return await ctx.send_event("test.nope")


@workflow
async def emitter(ctx: WorkflowContext, spec: dict[str, Any]) -> list[str]:
    try:
        if spec.get("outside"):
            return [await emit_outside(ctx)]
        return await emit(ctx, spec["count"], spec.get("fails", 0))
    except ActivityFailedError as exc:
        return [f"failed {exc.error_type}: {exc.message}"]


@workflow
async def emit_per_run(ctx: WorkflowContext, runs_left: int) -> int:
    await emit(ctx, 1, 0)
    if runs_left > 1:
        await ctx.recur(runs_left - 1)
    return ctx.run_no


ALL = [emitter, emit_per_run, emit, emit_outside]


def app_of(backend: Backend, **kwargs: Any) -> AbstractAsyncContextManager[App]:
    return open_app(backend.url, workflows=ALL, config=backend.config, **kwargs)


async def run_emitter(app: App, **spec: Any) -> tuple[str, list[str]]:
    iid = await app.start(emitter, spec)
    return iid, await app.result(iid, timeout=30)


# -- sans-IO ----------------------------------------------------------------------------------
def test_event_ids_are_stable_and_attributes_are_checked() -> None:
    same = default_event_id("i", 1, "a:1", 1)
    assert same == default_event_id("i", 1, "a:1", 1)
    assert len({same, default_event_id("i", 2, "a:1", 1), default_event_id("i", 1, "a:1", 2)}) == 3
    ok = dict(event_id="e", source="s", subject=None, extensions=None, time=0.0)
    body = json.loads(make_event("t", {"x": "\x00"}, **ok).to_json())
    assert body == {
        "specversion": "1.0", "id": "e", "source": "s", "type": "t",
        "time": "1970-01-01T00:00:00Z", "datacontenttype": "application/json",
        "data": {"x": "\x00"},
    }  # fmt: skip
    assert "data" not in json.loads(make_event("t", None, **ok).to_json())
    bad: list[tuple[str, dict[str, Any]]] = [
        ("", {}), ("t\n", {}), ("t", {"source": ""}), ("t", {"subject": "a\x00"}),
        ("t", {"extensions": {"Upper": "x"}}), ("t", {"extensions": {"id": "x"}}),
        ("t", {"extensions": {"big": 2**31}}), ("t", {"extensions": {"v": 1.5}}),
    ]  # fmt: skip
    for type_, change in bad:
        with pytest.raises(InvalidInputError):
            make_event(type_, None, **{**ok, **change})
    with pytest.raises(InvalidInputError, match="JSON"):
        make_event("t", object(), **ok)


def test_retry_delay_is_exponential_capped_and_jittered() -> None:
    config = RelayerConfig("http://sink.test/", initial_backoff=1.0, max_backoff=10.0)
    rng = random.Random(1)
    for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (20, 10.0), (5000, 10.0)]:
        assert 0.8 * base <= config.retry_delay(failures, rng) <= 1.2 * base
    for bad in [{"sink_url": "ftp://x/"}, {"claim_ttl": 1.0}, {"concurrency": 0}]:
        with pytest.raises(ValueError):
            RelayerConfig(**{"sink_url": "http://x/", "request_timeout": 2.0, **bad})


# -- writing ----------------------------------------------------------------------------------
async def test_event_commits_with_its_activity_or_not_at_all(backend: Backend) -> None:
    async with app_of(backend) as app:
        iid, result = await run_emitter(app, count=1, fails=2)
        assert result == ["failed RuntimeError: failed after send_event"] and ATTEMPTS[iid] == 2
        assert await outbox_rows(app.store.db) == []

        iid, ids = await run_emitter(app, count=2, fails=1)  # the retry sends the same events
        assert ATTEMPTS[iid] == 2
        assert ids == [default_event_id(iid, 1, "emit:1", n) for n in (1, 2)]
        rows = await outbox_rows(app.store.db)
        assert [r.event_id for r in rows] == ids
        row = rows[0]
        assert (row.source, row.type, row.subject) == ("romancy_trio://emitter", "test.emitted",
                                                       "item-0")  # fmt: skip
        assert row.data == {"n": 0, "text": "nul\x00inside", "iid": iid}  # U+0000 round-trips
        assert row.extensions == {"seqno": 0}
        assert (row.status, row.attempts, row.instance_id) == (OutboxStatus.PENDING, 0, iid)

        _, result = await run_emitter(app, outside=True)
        assert "transactional" in result[0] and len(await outbox_rows(app.store.db)) == 2

        iid = await app.start(emit_per_run, 3)  # every run of a recurring workflow: its own id
        assert await app.result(iid, timeout=30) == 3
        expected = [default_event_id(iid, run, "emit:1", 1) for run in (1, 2, 3)]
        assert [r.event_id for r in (await outbox_rows(app.store.db))[2:]] == expected


async def test_claims_fence_settlement_and_explicit_ids_are_idempotent(backend: Backend) -> None:
    async with app_of(backend) as app:
        store = OutboxStore(app.store.db)
        for _ in range(2):
            async with app.store.db.transaction() as tx:
                args = dict(instance_id="i", activity_id="a:1", run_no=1, n=1, data=[1], type="t")
                await send_event_tx(tx, **args, source="s", subject=None, event_id="fixed",
                                    extensions=None, now=time.time(),
                                    topic=outbox_topic(app.store.topics))  # fmt: skip

        async def once_expired(worker: str, ttl: float) -> ClaimedEvent:
            """Claim the row as soon as the claim that holds it has expired."""
            with trio.fail_after(20):
                while not (taken := await store.claim(worker, limit=5, ttl=ttl)):
                    await trio.sleep(0.02)
            [claimed] = taken
            return claimed

        [a1] = await store.claim("A", limit=5, ttl=1)
        assert await store.claim("B", limit=5, ttl=10) == []  # held for a second
        a2 = await once_expired("A", ttl=1)  # the same worker, a newer claim
        assert a2.epoch == a1.epoch + 1
        assert not await store.delivered(a1, "A")  # a stale claim of the same worker
        b = await once_expired("B", ttl=10)
        assert not await store.delivered(a2, "A")
        assert await store.attempt_failed(a2, "A", error="x", delay=0, max_attempts=3) is None
        assert await store.delivered(b, "B")
        [row] = await outbox_rows(app.store.db)
        expected = ("fixed", OutboxStatus.DELIVERED, 1, "B")
        assert (row.event_id, row.status, row.attempts, row.claimed_by) == expected


# -- relaying ---------------------------------------------------------------------------------
async def test_a_sink_failing_twice_gets_the_same_event_three_times(backend: Backend) -> None:
    sink = Sink(lambda event, attempt: 500 if attempt <= 2 else 202)
    async with app_of(backend) as app:
        async with open_sink(sink) as url, relaying(app, url) as relayer:
            _, [eid] = await run_emitter(app, count=1)
            await until(lambda: len(sink.ok()) == 1)
            await until(lambda: _status_is(app, OutboxStatus.DELIVERED))
            # the relayer counts after its COMMIT, which the poll above may see first
            await until(lambda: relayer.statistics().in_flight == 0)
            stats = relayer.statistics()
        assert [r.event["id"] for r in sink.requests] == [eid] * 3
        for r in sink.requests:
            assert r.headers["content-type"] == outbox.CONTENT_TYPE
            assert r.headers["x-romancy-worker"] == "test-relayer"
            assert r.event["data"]["text"] == "nul\x00inside" and r.event["seqno"] == 0
        [row] = await outbox_rows(app.store.db)
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.DELIVERED, 3, None)
        assert row.delivered_at is not None
        assert (stats.delivered, stats.retried, stats.failed, stats.in_flight) == (1, 2, 0, 0)


@pytest.mark.parametrize("sink_kind", ["refuses", "unreachable"])
async def test_a_sink_that_always_fails_leaves_the_row_failed(
    backend: Backend, sink_kind: str
) -> None:
    sink = Sink(lambda event, attempt: 503)
    async with app_of(backend) as app, open_sink(sink) as url:
        if sink_kind == "unreachable":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                url = f"http://127.0.0.1:{s.getsockname()[1]}/"  # closed: nothing listens
        async with relaying(app, url, max_attempts=3) as relayer:
            await run_emitter(app, count=1)
            await until(lambda: _status_is(app, OutboxStatus.FAILED))
            await until(lambda: relayer.statistics().in_flight == 0)  # counted after COMMIT
            assert relayer.statistics().failed == 1
        [row] = await outbox_rows(app.store.db, OutboxStatus.FAILED)
        assert row.attempts == 3 and row.last_error
        if sink_kind == "refuses":
            assert row.last_error == "HTTP 503: nope" and len(sink.requests) == 3
        else:
            assert row.last_error.startswith("ConnectError") and not sink.requests


async def test_the_relayer_wakes_on_notify_not_on_its_fallback(backend: Backend) -> None:
    slow = NotifyConfig(fallback_interval=120)
    sink = Sink()
    async with (
        app_of(backend, notify_config=slow) as app,
        open_sink(sink) as url,
        _relayer_hub(backend, app, slow) as hub,
        relaying(app, url, hub, fallback_interval=30.0, claim_ttl=30.0) as relayer,
    ):
        # the relayer found nothing and sleeps until a notification
        await until(lambda: relayer.statistics().claims >= 1)
        with trio.fail_after(20):  # well before the relayer's 30 s fallback
            await run_emitter(app, count=1)
            await until(lambda: len(sink.ok()) == 1)
        assert relayer.statistics().claims <= 4


def _relayer_hub(backend: Backend, app: App, config: NotifyConfig) -> Any:
    """PostgreSQL: a hub of its own, so only the database's NOTIFY can wake the relayer
    (MySQL: only the signal table, read without skipping the app's own signals)."""
    if backend.name == "sqlite":
        return nullcontext(app.hub)
    if backend.name == "mysql":
        from romancy_notify import open_local_hub
        from romancy_trio.storage._mysql import MysqlDatabase
        from romancy_trio.storage._mysql_signals import SignalReader

        assert isinstance(app.store.db, MysqlDatabase)
        return open_local_hub([outbox_topic(app.store.topics)], config, poll_interval=0.05,
                              fetch_elsewhere=SignalReader(app.store.db, origin=""))
    return open_pg_hub(backend.url, [outbox_topic(app.store.topics)], config,
                       listener_dsn=backend.direct_url)


async def test_shutdown_hands_an_in_flight_event_back(backend: Backend) -> None:
    async def hangs(event: dict[str, Any], attempt: int) -> int:
        await trio.sleep_forever()
        raise AssertionError

    sink = Sink(hangs)
    async with app_of(backend) as app, open_sink(sink) as url:
        async with relaying(app, url, request_timeout=20.0, claim_ttl=60.0) as relayer:
            await run_emitter(app, count=1)
            await until(lambda: relayer.statistics().in_flight == 1)
            # the sink has the whole request: shut down while the relayer awaits the answer
            # (stopping httpx mid-body leaves its body generator to be finalized by the GC)
            await until(lambda: sum(sink.attempts.values()) == 1)
        [row] = await outbox_rows(app.store.db)
        assert (row.status, row.attempts, row.claimed_by) == (OutboxStatus.PENDING, 0, None)
        assert await OutboxStore(app.store.db).claim("next", limit=1, ttl=5)  # claimable now


async def test_delivered_rows_are_purged_after_retention(backend: Backend) -> None:
    sink = Sink(lambda event, attempt: 400 if event["subject"] == "item-1" else 200)
    async with (
        app_of(backend) as app,
        open_sink(sink) as url,
        relaying(app, url, retention=0.2, cleanup_interval=0.1, max_attempts=1) as relayer,
    ):
        await run_emitter(app, count=2)
        await until(lambda: relayer.statistics().purged == 1)
        [row] = await outbox_rows(app.store.db)  # the failed row stays
        assert (row.subject, row.status) == ("item-1", OutboxStatus.FAILED)


async def _status_is(app: App, status: OutboxStatus) -> bool:
    rows = await outbox_rows(app.store.db)
    return bool(rows) and all(r.status is status for r in rows)


# -- two relayer processes ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
async def test_two_relayer_processes_deliver_each_event_once(pg_backend: Backend) -> None:
    async def flaky(event: dict[str, Any], attempt: int) -> int:
        await trio.sleep(random.uniform(0.001, 0.005))
        return 503 if attempt == 1 and event["data"]["n"] % 10 == 3 else 200

    sink, b = Sink(flaky), pg_backend
    async with open_app(b.url, workflows=ALL, config=b.config) as app, open_sink(sink) as url:
        async with (
            relayer_process(b.url, b.config.schema, "r1", url),
            relayer_process(b.url, b.config.schema, "r2", url),
        ):
            for _ in range(50):
                await app.start(emitter, {"count": 10})
            async def delivered() -> object:
                return len(sink.ok())

            # they are woken by PostgreSQL NOTIFY: never as long as their 30 s fallback without
            # a delivery (however long the 500 take in all on a loaded machine)
            async with failing_if_stuck(delivered, idle=25):
                await until(lambda: len(sink.ok()) >= 500, timeout=math.inf)
            await trio.sleep(0.5)  # a duplicate would show up here
        ok = sink.ok()
        assert len(ok) == 500 and len({r.event["id"] for r in ok}) == 500
        assert {r.headers["x-romancy-worker"] for r in ok} == {"r1", "r2"}
        assert len(sink.requests) == 550  # 50 events were refused once, then retried
        by_id: dict[str, list[Request]] = defaultdict(list)
        for r in sink.requests:
            by_id[r.event["id"]].append(r)
        for reqs in by_id.values():
            reqs.sort(key=lambda r: r.start)
            for earlier, later in itertools.pairwise(reqs):
                assert later.start >= earlier.end, "one event was being delivered twice at once"
        assert await _status_is(app, OutboxStatus.DELIVERED)
        assert len(await outbox_rows(app.store.db, limit=1000)) == 500
