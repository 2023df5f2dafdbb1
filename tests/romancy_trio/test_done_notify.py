"""The done notification (issue #22) goes only to a waiter in another process: the waiter marks
the instance (``watcher``); an instance run and awaited in one process, or never awaited, ends
without one; a waiter elsewhere still wakes at once, whichever commits first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import trio
from psycopg import sql

from romancy_trio import WorkflowStatus, open_app
from romancy_trio.storage._migrate import load_migrations
from romancy_trio.storage._types import Lease, Topics

from ._procs import start_worker, stop
from .conftest import Backend, fetch
from .test_notify_wiring import _ddl, _slow
from .worker_proc import ALL, steps

SLOW_FALLBACK = 600.0  # far above every wait below: a wake-up there came from a notification


class _Dones:
    """The done notifications a database sent, in commit order: PostgreSQL's on a LISTENing
    connection of the test's own; MySQL's signal rows."""

    def __init__(self, b: Backend, app: Any, conn: psycopg.Connection[Any] | None) -> None:
        self.b, self.app, self.conn = b, app, conn
        self.topic: str = app.store.topics.done
        self.channel: dict[str, str] = {}
        """PostgreSQL: the channel each payload came on (the shared one, or a waiter's)."""
        if conn is not None:
            _listen(conn, app.store.topics.done_for(app.worker_id))

    async def sent(self) -> list[str]:
        """Payloads of every done notification committed so far."""
        if self.conn is None:
            rows = await fetch(self.app, "SELECT payload FROM romancy_signals WHERE topic = ? "
                               "ORDER BY id", (self.topic,))
            return [str(r[0]) for r in rows]
        conn = self.conn
        with psycopg.connect(self.b.direct_url or self.b.url, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, 'sentinel')", (self.topic,))

        def drain() -> list[str]:  # notifications arrive in commit order: all before this one
            got = []
            for n in conn.notifies(timeout=30):
                if n.payload == "sentinel":
                    return got
                got.append(n.payload)
                self.channel[n.payload] = n.channel
            raise AssertionError("the sentinel notification never arrived")

        return await trio.to_thread.run_sync(drain)


WAITERS = ("waiter", "me", "me2", "someone")
"""The worker ids the tests below mark as waiting: their done channels are listened to too."""


def _listen(conn: psycopg.Connection[Any], channel: str) -> None:
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


@contextmanager
def _listening(b: Backend) -> Iterator[psycopg.Connection[Any] | None]:
    if b.name != "postgres":
        yield None
        return
    topics = Topics.for_schema(b.config.schema)
    with psycopg.connect(b.direct_url or b.url, autocommit=True) as conn:
        for channel in (topics.done, *(topics.done_for(w) for w in WAITERS)):
            _listen(conn, channel)
        yield conn


@pytest.mark.slow
async def test_a_waiter_in_another_process_wakes_without_polling(server_backend: Backend) -> None:
    b = _slow(server_backend, SLOW_FALLBACK)
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        await _ddl(app)
        worker = start_worker(b.url, b.config.schema, "elsewhere", FALLBACK=str(SLOW_FALLBACK))
        try:
            with trio.fail_after(60):  # far below the fallback: each wake-up was notified
                assert await app.run(steps, 1) == [10]  # marked by its INSERT
                iid = await app.start(steps, 2)
                assert await app.result(iid) == [10, 20]  # marked by result
        finally:
            stop(worker)


async def test_an_instance_run_and_awaited_here_sends_no_done_notification(
        server_backend: Backend) -> None:
    b = server_backend
    with _listening(b) as conn:
        async with open_app(b.url, workflows=ALL, config=b.config) as app:
            await _ddl(app)
            dones = _Dones(b, app, conn)
            ran = "ran-here"
            assert await app.run(steps, 1, instance_id=ran) == [10]
            awaited = await app.start(steps, 2)
            assert await app.result(awaited) == [10, 20]
            never_awaited = await app.start(steps, 1)
            with trio.fail_after(30):
                while (await app.status(never_awaited)).status is not WorkflowStatus.COMPLETED:
                    await trio.sleep(0.02)
            assert not {ran, awaited, never_awaited} & set(await dones.sent())


async def _leased(app: Any, owner: str) -> Lease:
    made = await app.store.create_instance(f"race-{owner}-{id(app)}", "steps", "[1]", now=0.0,
                                           owner=owner, lease_ttl=60.0)
    assert isinstance(made, Lease)
    return made


@pytest.mark.parametrize("order", ["mark, then finish", "finish, then mark",
                                   "finish while the mark is uncommitted",
                                   "mark while the finish is uncommitted"])
async def test_a_marked_waiter_elsewhere_is_told_in_every_order(
        server_backend: Backend, order: str) -> None:
    b = server_backend
    with _listening(b) as conn:
        async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
            store = app.store
            dones = _Dones(b, app, conn)
            lease = await _leased(app, "finisher")
            iid = lease.instance_id

            async def finish() -> None:
                await store.finish(lease, WorkflowStatus.COMPLETED, result=1, now=1.0)

            live_at_mark: list[bool] = []

            async def mark() -> None:
                live_at_mark.append(await store.mark_watcher(iid, "waiter"))

            if order == "mark, then finish":
                await mark()
                await finish()
            elif order == "finish, then mark":
                await finish()
                await mark()
            elif order == "finish while the mark is uncommitted":
                async with trio.open_nursery() as nursery:
                    async with store.db.transaction() as tx:
                        await tx.execute(store.q.mark_watcher, {"iid": iid, "me": "waiter"})
                        nursery.start_soon(finish)  # waits for the mark's row lock
                        await trio.sleep(0.2)
                    # the mark committed: the finish goes on and sees it
            else:
                async with trio.open_nursery() as nursery:
                    async with store.db.transaction() as tx:
                        row = await tx.fetchone(store.q.finish, {
                            "iid": iid, "owner": lease.worker_id, "epoch": lease.epoch,
                            "status": WorkflowStatus.COMPLETED, "now": 1.0, "result": "1",
                            "error": None, "topic": store.topics.done})
                        assert row is not None
                        nursery.start_soon(mark)  # waits for the finish's row lock
                        await trio.sleep(0.2)
                    # the finish committed: the mark goes on
            # what a waiter reads after its mark committed
            info = await app.status(iid)
            told = iid in await dones.sent()
            assert info.status is WorkflowStatus.COMPLETED
            if order == "finish, then mark" or order.startswith("mark while"):
                assert not told  # ended before the mark: the waiter's read after it sees so
                assert live_at_mark == [False]  # so it reads the status again
            else:
                assert told
            if order == "mark, then finish":  # PostgreSQL's mark saw it live: no second read
                assert live_at_mark == [b.name == "postgres"]


async def test_the_finishing_worker_notifies_only_a_waiter_other_than_itself(
        server_backend: Backend) -> None:
    b = server_backend
    with _listening(b) as conn:
        async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
            dones = _Dones(b, app, conn)
            store = app.store
            alone = await _leased(app, "me")
            await store.mark_watcher(alone.instance_id, "me")
            await store.finish(alone, WorkflowStatus.COMPLETED, result=1, now=1.0)
            both = await _leased(app, "me2")
            await store.mark_watcher(both.instance_id, "me2")
            await store.mark_watcher(both.instance_id, "someone")
            await store.mark_watcher(both.instance_id, "me2")  # stays '*'
            await store.finish(both, WorkflowStatus.COMPLETED, result=1, now=1.0)
            one = await _leased(app, "finisher")
            await store.mark_watcher(one.instance_id, "waiter")
            await store.finish(one, WorkflowStatus.COMPLETED, result=1, now=1.0)
            sent = await dones.sent()
            assert alone.instance_id not in sent
            assert both.instance_id in sent
            assert one.instance_id in sent
            if b.name == "postgres":  # one waiter: only its process is woken; two: every one
                assert dones.channel[one.instance_id] == store.topics.done_for("waiter")
                assert dones.channel[both.instance_id] == store.topics.done


async def test_a_database_of_the_previous_schema_gains_the_watcher(backend: Backend) -> None:
    b = backend
    latest = load_migrations(b.name)[-1]
    assert latest.name.endswith("_watcher.sql")
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        async with app.store.db.transaction() as tx:  # as the previous version left it
            await tx.execute("ALTER TABLE workflow_instances DROP COLUMN watcher")
            await tx.execute(f"DELETE FROM schema_migrations WHERE version = '{latest.version}'")
    async with open_app(b.url, workflows=ALL, config=b.config) as app:
        await _ddl(app)
        assert await app.run(steps, 1) == [10]
        rows = await fetch(app, "SELECT watcher FROM workflow_instances")
        assert rows == [(app.worker_id,)]
