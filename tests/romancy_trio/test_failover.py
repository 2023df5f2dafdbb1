"""Failover to a standby (issue #30): a private primary with a synchronous streaming standby
(``tests/pgcluster.py``: initdb, pg_basebackup -R, spare ports; never the shared server), a
multi-host URL, the primary crashed with ``-m immediate`` and the standby promoted.

The acceptance drill: 100 instances on two worker processes (60 waiting for an event, 20
sleeping, 20 in the middle of transactional activities) - every one completes, every effect is
in the ledger exactly once, and no worker takes another's instances over (all of them were
alive throughout). The time from promotion to the last waiting instance resumed is printed
here and measured by ``python -m loadtests failover``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from romancy_trio import (
    Event,
    InstanceNotFoundError,
    StorageUnavailableError,
    WorkflowContext,
    open_app,
    wait_event,
    workflow,
)
from tests._paths import PYTHONPATH
from tests.pgcluster import PgCluster, StandbyPair

from ._drills import LEDGER_DDL, retrying
from ._procs import ROOT, stop
from ._waits import LogSeen
from .failover_proc import (
    CONFIG,
    FLOWS,
    failover_round,
    fo_resumed,
    fo_waiter,
    start_worker,
)

pytestmark = pytest.mark.slow


@workflow
async def fo_two_steps(ctx: WorkflowContext) -> int:
    await fo_resumed(ctx, "one")
    data: int = (await wait_event(ctx, "next")).data
    await fo_resumed(ctx, "two")
    return data


async def _retrying(fn: Any, *args: Any) -> Any:
    with trio.fail_after(60):
        return await retrying(fn, *args)


@pytest.mark.parametrize("promote_after", [0.0, 1.0])
async def test_failover_every_instance_completes_every_effect_once(
        pg_standby_pair: StandbyPair, tmp_path: Path, promote_after: float) -> None:
    """``promote_after``: seconds between the crash and the promotion (a failover manager
    making sure the primary is gone). 1 s: the workers' reconnect attempts have backed off, so
    they reach the new primary at different moments (without the timeline check, about every
    other run took a live worker's instances over), yet well within the leases (lease_ttl 5 s,
    renewed every 1.5 s), which a longer failover would let expire."""
    pair = pg_standby_pair
    async with open_app(pair.url, workflows=FLOWS, config=CONFIG, run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        names = ["worker-a", "worker-b"]
        logs = [tmp_path / f"{name}.log" for name in names]
        procs = [start_worker(pair.url, name, log) for name, log in zip(names, logs, strict=True)]
        try:
            result = await failover_round(app, pair, names, promote_after=promote_after)
        finally:
            for proc in procs:
                stop(proc)
        [(port,)] = await app.store.db.fetchall("SELECT inet_server_port()")
    assert port == pair.standby.port  # the driver's own pool moved too
    text = "".join(log.read_text() for log in logs)
    print(f"\nafter the promotion: listeners back {result.listeners_last:.3f} s, last waiting "
          f"instance resumed {result.woken_last:.3f} s (events sent by "
          f"{result.sent_last:.3f} s), last running instance resumed "
          f"{result.runners_resumed:.3f} s; at the crash {result.in_flight} activity "
          f"transactions were open and {result.sleeping_at_crash} instances asleep")
    # both workers lived throughout: nothing of theirs may be taken for dead
    assert "taking over instance" not in text, text[-3000:]
    assert "is now on timeline" in text  # each noticed the promotion (and held back)
    assert "Traceback" not in text, text[-3000:]


async def test_in_process_worker_session_listener_and_pool_follow_the_promotion(
        pg_standby_pair: StandbyPair) -> None:
    """One App (its own worker): after the failover its pool, its notify listener and its
    worker session (the advisory lock other workers check) are on the new primary, and a
    waiting instance is woken by an event sent there."""
    pair = pg_standby_pair
    seen = LogSeen("is now on timeline")
    logging.getLogger("romancy_trio.storage").addHandler(seen)
    try:
        async with open_app(pair.url, workflows=FLOWS, config=CONFIG) as app:
            await app.store.db.execute(LEDGER_DDL)
            iid = await app.start(fo_waiter)
            with trio.fail_after(30):
                while (await app.status(iid)).status != "waiting":
                    await trio.sleep(0.01)
            reconnects = app.hub.statistics().reconnects
            await trio.to_thread.run_sync(pair.fail_over)
            await _retrying(app.send_event, Event(type="go", source="t", id="1", data="hi",
                                                  target_instance_id=iid))
            assert await app.result(iid, timeout=30) == "hi"
            with trio.fail_after(30):
                while not (app.hub.statistics().listening
                           and app.hub.statistics().reconnects > reconnects):
                    await trio.sleep(0.01)
                while not seen.seen:  # the takeover check noticed the new timeline
                    await trio.sleep(0.01)
                while True:  # the worker session took its lock again, on the new primary
                    rows = pair.standby.query(
                        "SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND "
                        "l.granted AND l.objsubid = 1 AND ((l.classid::bigint << 32) | "
                        "l.objid::bigint) = hashtextextended("
                        f"'{app.config.schema}:{app.worker_id}', 0)")
                    if rows == [(1,)]:
                        break
                    await trio.sleep(0.01)
            [(port,)] = await app.store.db.fetchall("SELECT inet_server_port()")
            assert port == pair.standby.port
    finally:
        logging.getLogger("romancy_trio.storage").removeHandler(seen)


async def test_a_standby_is_not_kept_and_is_used_once_promoted(
        pg_standby_pair: StandbyPair) -> None:
    """A single-host URL naming the standby: refused (it is read-only) with a message that
    says so; with ``wait_for_database`` the app waits and opens once the standby is promoted."""
    pair = pg_standby_pair
    standby_only = pair.standby.dsn
    with pytest.raises(StorageUnavailableError, match="standby"):
        async with open_app(standby_only, workflows=FLOWS, config=CONFIG):
            pytest.fail("open_app entered on a standby")
    seen = LogSeen("waiting up to 60 s")
    logging.getLogger("romancy_trio.storage").addHandler(seen)
    try:
        async with trio.open_nursery() as nursery:
            ports: list[int] = []

            async def app_user() -> None:
                async with open_app(standby_only, workflows=FLOWS, config=CONFIG,
                                    wait_for_database=60) as app:
                    [(port,)] = await app.store.db.fetchall("SELECT inet_server_port()")
                    ports.append(port)

            nursery.start_soon(app_user)
            with trio.fail_after(30):
                while not seen.seen:
                    await trio.sleep(0.01)
            await trio.to_thread.run_sync(pair.fail_over)
    finally:
        logging.getLogger("romancy_trio.storage").removeHandler(seen)
    assert ports == [pair.standby.port]


async def test_migrate_and_serve_take_a_multi_host_url_standby_listed_first(
        pg_standby_pair: StandbyPair, tmp_path: Path) -> None:
    """The commands the docker files run, with ``ROMANCY_TRIO_URL`` a multi-host URL that
    lists the standby first: ``migrate`` applies the schema on the primary, ``serve``
    (app_from_env) answers; after a failover, ``serve`` runs new workflows on the new primary."""
    pair = pg_standby_pair
    url = (f"postgresql://postgres@127.0.0.1:{pair.standby.port},127.0.0.1:"
           f"{pair.primary.port}/postgres?target_session_attrs=read-write")
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "ROMANCY_TRIO_URL": url,
           "ROMANCY_TRIO_WORKFLOWS": "tests.romancy_trio.failover_proc"}
    migrate = await trio.run_process(
        ["sh", "-c", 'exec "$0" -m romancy_trio migrate "$ROMANCY_TRIO_URL"', sys.executable],
        cwd=ROOT, env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert migrate.returncode == 0, migrate.stderr
    assert pair.primary.query("SELECT count(*) FROM romancy.schema_migrations")[0][0] > 0
    pair.wait_replayed()
    port = _free_port()
    pair.primary.query(LEDGER_DDL)
    with (tmp_path / "serve.log").open("w") as log:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "romancy_trio", "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         timeout=30) as client:
                await _sleeper_runs(client)
                await trio.to_thread.run_sync(pair.fail_over)
                await _sleeper_runs(client)
        finally:
            proc.terminate()
            with trio.fail_after(30):
                code = await proc.wait()
    assert code == 0, (tmp_path / "serve.log").read_text()


async def _sleeper_runs(client: httpx.AsyncClient) -> None:
    """Start a workflow over HTTP (retrying while the database is away) and get its result."""
    with trio.fail_after(60):
        while True:
            try:
                r = await client.post("/workflows/fo_sleeper", json={"input": 0})
                if r.status_code == 202:
                    break
            except httpx.TransportError:
                pass  # not serving yet
            await trio.sleep(0.05)
        r = await client.get(f"/instances/{r.json()['instance_id']}/result?timeout=30")
    assert r.status_code == 200 and r.json()["result"] == "woke", r.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ledger(app: Any, iid: str) -> list[str]:
    rows = await _retrying(app.store.db.fetchall,
                           "SELECT step FROM ledger WHERE instance_id = %s ORDER BY step", (iid,))
    return [r[0] for r in rows]


async def test_asynchronous_standby_loses_unreplicated_transactions_whole(
        pg_async_standby_pair: StandbyPair) -> None:
    """What the docs say asynchronous replication can lose: transactions the primary
    acknowledged but had not sent yet - here an event, the activity it let run (its effect and
    its history record together) and the instance's completion, and a start. The new primary
    has the state before them, consistent: the instance waits again, the event is unknown (sent
    again, it is stored anew), the activity runs again - its effect recorded once."""
    pair = pg_async_standby_pair
    flows = [fo_two_steps, fo_resumed, fo_waiter]
    async with open_app(pair.url, workflows=flows, config=CONFIG) as app:
        await app.store.db.execute(LEDGER_DDL)
        await app.start(fo_two_steps, instance_id="a")
        with trio.fail_after(30):
            while (await app.status("a")).status != "waiting":
                await trio.sleep(0.01)
        await trio.to_thread.run_sync(pair.wait_replayed)
        await trio.to_thread.run_sync(pair.detach_standby)  # from now on: never replicated
        event = Event(type="next", source="t", id="e1", data=7, target_instance_id="a")
        assert not (await app.send_event(event)).duplicate
        assert await app.result("a", timeout=30) == 7
        assert await _ledger(app, "a") == ["one", "two"]
        await app.start(fo_waiter, instance_id="b")

        await trio.to_thread.run_sync(pair.fail_over)
        info = await _retrying(app.status, "a")
        assert info.status == "waiting"  # as before the lost transactions
        assert await _ledger(app, "a") == ["one"]  # the lost effect went with its history
        with pytest.raises(InstanceNotFoundError):
            await app.status("b")  # its start was acknowledged, and lost
        assert not (await app.send_event(event)).duplicate  # the event was lost too
        assert await app.result("a", timeout=30) == 7
        assert await _ledger(app, "a") == ["one", "two"]  # step two: once on the new primary


def _readme_example() -> str:
    """The example of the docs' "Failover to a standby" page: docs/examples/failover.py."""
    return (ROOT / "docs" / "examples" / "failover.py").read_text()


async def test_readme_failover_example_runs_before_and_after_a_failover(
        pg_standby_pair: StandbyPair, tmp_path: Path) -> None:
    pair = pg_standby_pair
    pair.primary.query("CREATE TABLE charges (order_id text, cents int)")
    script = tmp_path / "example.py"
    script.write_text(_readme_example())
    env = {"PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", ""),
           "ROMANCY_TRIO_URL": pair.url}

    async def run() -> str:
        done = await trio.run_process([sys.executable, str(script)], cwd=tmp_path, env=env,
                                      capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return done.stdout.decode()

    assert await run() == "charged 4200\n"
    await trio.to_thread.run_sync(pair.fail_over)
    assert await run() == "charged 4200\n"  # the completed instance survived, with its effect
    assert pair.standby.query("SELECT order_id, cents FROM charges") == [("order-1", 4200)]


async def test_a_primary_turned_read_only_fails_calls_retryably_and_keeps_no_connection(
        pg_cluster: PgCluster) -> None:
    """A server that refuses writes (``default_transaction_read_only``, as some hosted
    databases set when their disk fills): a call fails with `StorageUnavailableError` naming
    it, the connection is discarded rather than lent again, and calls work once it is
    writable again."""
    async with open_app(pg_cluster.dsn, workflows=FLOWS, config=CONFIG,
                        run_workers=False) as app:
        await app.start(fo_waiter)
        pg_cluster.query("ALTER SYSTEM SET default_transaction_read_only = on")
        pg_cluster.query("SELECT pg_reload_conf()")
        pool = app.store.db.pool
        with trio.fail_after(30):
            while True:  # until the backends have reloaded their configuration
                discarded = pool.statistics().discarded
                try:
                    await app.start(fo_waiter)
                except StorageUnavailableError as exc:
                    assert "read-only" in str(exc)
                    break
                await trio.sleep(0.01)
        assert pool.statistics().discarded == discarded + 1
        pg_cluster.query("ALTER SYSTEM RESET default_transaction_read_only")
        pg_cluster.query("SELECT pg_reload_conf()")
        iid = await _retrying(app.start, fo_waiter)
        assert (await app.status(iid)).status in ("pending", "waiting")
