"""``python -m loadtests.mysql_bench``: MySQL/MariaDB next to PostgreSQL, in the same run.

Prints (medians over alternating repetitions, with ranges):

- baseline INSERT+COMMIT round trips on each server (PyMySQL in a worker thread; psycopg);
- one-activity workflows, ``--concurrency`` clients at once, on each server (workflows/s);
- cross-process wake-up on MySQL: a workflow waiting for an event in a worker process, the
  event sent from this process -> the workflow's next step recorded (p50/p99, ms);
- a competing channel over ``--channel-workers`` worker processes (``mysql_channels``):
  messages taken exactly once with a transactional side effect, on each server (messages/s,
  publish -> taken p50/p99);
- the idle cost of a worker process with ``--waiting`` workflows waiting: statements per
  second it sends (MySQL: ``Com_*`` counters of the server, this database's sessions only
  counted by a private server; here the whole server's counters minus a quiet baseline).

Environment: ``ROMANCY_TEST_PG_DSN``, ``ROMANCY_TEST_MYSQL_DSN`` (the local servers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("ROMANCY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")
MY = os.environ.get("ROMANCY_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")


@activity
async def mybench_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def mybench_one(ctx: WorkflowContext, n: int) -> int:
    return await mybench_step(ctx, n)


@workflow
async def mybench_waiter(ctx: WorkflowContext, key: str) -> float:
    event = await wait_event(ctx, f"bench.{key}", timeout=120)
    return float(event.data["sent"])


def _my_conn(database: str | None = None) -> Any:
    from romancy_trio.storage._mysql_conn import parse_url

    p = parse_url(MY)
    return pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password,
                           database=database or p.database, autocommit=True)


def fresh_mysql() -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with _my_conn().cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return MY.rsplit("/", 1)[0] + "/" + name


def drop_mysql(url: str) -> None:
    with _my_conn().cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{url.rsplit('/', 1)[1]}`")


def fresh_pg() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return PG, schema


def drop_pg(schema: str) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def baseline_mysql(n: int) -> float:
    conn = _my_conn()
    conn.autocommit(False)
    with conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE b (id int AUTO_INCREMENT PRIMARY KEY, v int)")
        t = time.perf_counter()
        for i in range(n):
            cur.execute("INSERT INTO b (v) VALUES (%s)", (i,))
            conn.commit()
        elapsed = time.perf_counter() - t
    conn.close()
    return n / elapsed


def baseline_pg(n: int) -> float:
    with psycopg.connect(PG) as conn:
        conn.execute("CREATE TEMPORARY TABLE b (id serial PRIMARY KEY, v int)")
        conn.commit()
        t = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO b (v) VALUES (%s)", (i,))
            conn.commit()
        return n / (time.perf_counter() - t)


async def workflows_per_second(url: str, schema: str, n: int, concurrency: int) -> float:
    config = AppConfig(schema=schema, max_concurrent=max(concurrency, 10))
    async with open_app(url, workflows=[mybench_one, mybench_step], config=config) as app:
        await app.run(mybench_one, 0, timeout=60)  # warm
        sem = trio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                assert await app.run(mybench_one, i, timeout=120) == i + 1

        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
        return n / (time.perf_counter() - t)


def _worker(url: str) -> subprocess.Popen[str]:
    code = (
        "import sys, trio\n"
        "from romancy_trio import AppConfig, open_app\n"
        "from loadtests.mysql_bench import mybench_waiter\n"
        "async def main():\n"
        "    async with open_app(sys.argv[1], workflows=[mybench_waiter],\n"
        "                        config=AppConfig(fallback_interval=60.0)):\n"
        "        print('ready', flush=True)\n"
        "        await trio.sleep_forever()\n"
        "trio.run(main)\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT}/notify:{ROOT}/channels"}
    proc = subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def wakeup_latencies(url: str, n: int) -> list[float]:
    """ms from send_event's COMMIT to the waiter's event recorded by the worker process."""
    from romancy_trio.storage._db import Database

    proc = _worker(url)
    try:
        async with open_app(url, workflows=[mybench_waiter], run_workers=False,
                            config=AppConfig(fallback_interval=60.0)) as app:
            db: Database = app.store.db
            out = []
            for i in range(n):
                iid = await app.start(mybench_waiter, str(i))
                with trio.fail_after(60):  # wait until it is suspended (status waiting)
                    while (info := await app.status(iid)) is None or info.status != "waiting":
                        await trio.sleep(0.005)
                sent = time.time()
                await app.send_event(Event(type=f"bench.{i}", source="bench", id=str(i),
                                           data={"sent": sent}))
                with trio.fail_after(60):  # the worker process ran it to its end
                    while (await db.fetchone(
                            "SELECT status FROM workflow_instances WHERE instance_id = %s",
                            (iid,))) != ("completed",):
                        await trio.sleep(0.001)
                out.append((time.time() - sent) * 1000)
            return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_statements() -> int:
    with _my_conn().cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
        return int(cur.fetchone()[1])


async def idle_queries_per_second(url: str, waiting: int, seconds: float) -> tuple[float, float]:
    """(statements/s with no worker, statements/s with one idle worker) over ``seconds``."""
    async with open_app(url, workflows=[mybench_waiter], run_workers=False) as app:
        async with app.store.db.transaction() as tx:
            for i in range(0, waiting, 500):
                values = ", ".join(
                    f"('w{j}', 'mybench_waiter', 'waiting', '[]', 0, 0, 0)"
                    for j in range(i, min(i + 500, waiting)))
                await tx.execute(
                    "INSERT INTO workflow_instances (instance_id, workflow_name, status, input, "
                    f"run_started_at, created_at, updated_at) VALUES {values}")
    before = server_statements()
    await trio.sleep(seconds)
    quiet = (server_statements() - before) / seconds
    proc = _worker(url)
    try:
        await trio.sleep(3)  # start-up done
        before = server_statements()
        await trio.sleep(seconds)
        busy = (server_statements() - before) / seconds
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return quiet, busy


async def idle_statements_counted(url: str, seconds: float) -> float:
    """Statements/s an idle worker in this process sends (every statement handed to the
    driver is counted, the server's other clients are not); call after
    `idle_queries_per_second` filled the database with waiting workflows."""
    from romancy_trio.storage import _mysql, _mysql_conn, _mysql_signals

    sent = [0]
    original = _mysql_conn.run_statement

    def counted(raw: Any, query: str, params: Any) -> tuple[int, list[Any]]:
        sent[0] += 1
        return original(raw, query, params)

    modules = (_mysql, _mysql_conn, _mysql_signals)
    for module in modules:
        module.run_statement = counted  # type: ignore[attr-defined]
    try:
        async with open_app(url, workflows=[mybench_waiter]):
            await trio.sleep(3)  # start-up done
            sent[0] = 0
            await trio.sleep(seconds)
            return sent[0] / seconds
    finally:
        for module in modules:
            module.run_statement = original  # type: ignore[attr-defined]


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  [{min(values):.1f} .. {max(values):.1f}]"


async def main(args: argparse.Namespace) -> None:
    print(f"romancy_trio MySQL/MariaDB benchmark; repetitions={args.repetitions}")
    base_my, base_pg, wf_my, wf_pg = [], [], [], []
    for _ in range(args.repetitions):  # alternating: MySQL, PostgreSQL
        base_my.append(await trio.to_thread.run_sync(baseline_mysql, args.baseline))
        base_pg.append(await trio.to_thread.run_sync(baseline_pg, args.baseline))
        if args.only:
            continue
        url = fresh_mysql()
        try:
            wf_my.append(await workflows_per_second(url, "unused", args.workflows,
                                                    args.concurrency))
        finally:
            drop_mysql(url)
        dsn, schema = fresh_pg()
        try:
            wf_pg.append(await workflows_per_second(dsn, schema, args.workflows,
                                                    args.concurrency))
        finally:
            drop_pg(schema)
    print(f"baseline INSERT+COMMIT/s   MySQL {_fmt(base_my)}   PostgreSQL {_fmt(base_pg)}")
    if not args.only:
        ratio = statistics.median(wf_my) / statistics.median(wf_pg)
        print(f"one-activity workflows/s at {args.concurrency} concurrent   MySQL "
              f"{_fmt(wf_my)}   PostgreSQL {_fmt(wf_pg)}   ratio {ratio:.0%}")
    if args.only in (None, "wakeup"):
        await wakeups(args)
    if args.only in (None, "competing"):
        await competing_both(args)
    if args.only is None:
        await idle_cost(args)


async def wakeups(args: argparse.Namespace) -> None:
    """Cross-process wake-up latency, ``--repetitions`` runs of ``--wakeups`` each."""
    p50s, p99s = [], []
    for _ in range(args.repetitions):
        url = fresh_mysql()
        try:
            lat = sorted(await wakeup_latencies(url, args.wakeups))
        finally:
            drop_mysql(url)
        p50s.append(lat[len(lat) // 2])
        p99s.append(lat[min(len(lat) - 1, int(len(lat) * 0.99))])
    print(f"cross-process wake-up (MySQL, event COMMIT -> workflow done in another process, "
          f"{args.wakeups} per run)   p50 ms {_fmt(p50s)}   p99 ms {_fmt(p99s)}")


async def idle_cost(args: argparse.Namespace) -> None:
    url = fresh_mysql()
    try:
        quiet, busy = await idle_queries_per_second(url, args.waiting, args.idle_seconds)
        print(f"idle worker with {args.waiting} waiting workflows: server statements/s "
              f"{busy:.1f} with it, {quiet:.1f} without (shared server: other clients count "
              f"too) -> the worker's own about {busy - quiet:.1f}/s")
        own = await idle_statements_counted(url, args.idle_seconds)
        print(f"idle worker with {args.waiting} waiting workflows, its statements counted in "
              f"the client: {own:.1f}/s")
    finally:
        drop_mysql(url)


async def competing_both(args: argparse.Namespace) -> None:
    """The competing-channel scenario, alternating MySQL and PostgreSQL."""
    from ._common import with_search_path
    from .mysql_channels import Competing, competing

    sizes = dict(messages=args.messages, consumers=args.consumers,
                 workers=args.channel_workers)
    mine: list[Competing] = []
    theirs: list[Competing] = []
    for _ in range(args.repetitions):
        url = fresh_mysql()
        try:
            mine.append(await competing(url, url.rsplit("/", 1)[1], **sizes))
        finally:
            drop_mysql(url)
        dsn, schema = fresh_pg()
        try:
            theirs.append(await competing(with_search_path(dsn, schema), schema, **sizes))
        finally:
            drop_pg(schema)
    for name, got in (("MySQL", mine), ("PostgreSQL", theirs)):
        print(f"competing channel ({args.messages} msgs exactly once + tx effect, "
              f"{args.channel_workers} procs x {args.consumers} consumers) {name}: "
              f"msgs/s {_fmt([c.per_s for c in got])}   "
              f"p50 ms {_fmt([c.p50_ms for c in got])}   p99 ms {_fmt([c.p99_ms for c in got])}")


def run(argv: list[str]) -> int:
    """``python -m loadtests --backend mysql [options]`` (and ``python -m
    loadtests.mysql_bench``): the MySQL scenarios next to PostgreSQL."""
    parser = argparse.ArgumentParser(prog="python -m loadtests --backend mysql",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=400)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--wakeups", type=int, default=100)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--messages", type=int, default=2000,
                        help="competing channel: messages published")
    parser.add_argument("--consumers", type=int, default=8,
                        help="competing channel: consumer workflows")
    parser.add_argument("--channel-workers", type=int, default=3,
                        help="competing channel: worker processes")
    parser.add_argument("--only", choices=("competing", "wakeup"),
                        help="run only this scenario (with its baseline)")
    trio.run(main, parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
