"""HTTP intake throughput: CloudEvents ``POST /`` (and workflow starts) under hypercorn-trio.

    python -m loadtests http            # as part of the suite
    python loadtests/http_intake.py [--dsn DSN] [--seconds 5] [--clients 50]

The server is a real ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` subprocess on
127.0.0.1 (so it has its own core), backed by a fresh schema in the local PostgreSQL; each of
``--clients`` tasks in this process has its own keep-alive connection (a lean HTTP/1.1 client,
``loadtests/_lean_http.py``: httpx would spend more CPU than the server on this 2-core
machine) and posts as fast as answers come back. Bounded by time and by ``--max-requests`` per
sub-scenario.
Checks: every answer is 2xx; every 202 for a new event means a committed row (the stored count
equals the acknowledged count); duplicates are answered ``duplicate: true`` and stored once;
every started workflow completes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests._common import (  # noqa: E402
    DEFAULT_DSN,
    Result,
    Run,
    Sizes,
    check_local,
    drop_schema,
    new_schema,
    print_table,
    require,
    schema_rows,
)
from loadtests._lean_http import LeanConnection, encode_request  # noqa: E402
from loadtests._server import drain, start_server, stop_server  # noqa: E402
from loadtests.http_resume import resume_latency  # noqa: E402
from romancy_trio import WorkflowContext, workflow  # noqa: E402


@workflow
async def http_bench_noop(ctx: WorkflowContext, n: int) -> int:
    return n


Request = Callable[[int], dict[str, Any]]


def structured(n: int) -> dict[str, Any]:
    body = {
        "specversion": "1.0",
        "id": f"s-{n}",
        "source": "/bench/structured",
        "type": "bench.tick",
        "data": {"n": n, "pad": "x" * 200},
    }
    return {
        "url": "/",
        "content": json.dumps(body).encode(),
        "headers": {"content-type": "application/cloudevents+json"},
    }


def binary(n: int) -> dict[str, Any]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": f"b-{n}",
        "ce-source": "/bench/binary",
        "ce-type": "bench.tick",
        "content-type": "application/json",
    }
    return {
        "url": "/",
        "content": json.dumps({"n": n, "pad": "x" * 200}).encode(),
        "headers": headers,
    }


DUPLICATE_IDS = 100


def duplicate(n: int) -> dict[str, Any]:
    """The same 100 events again and again: all but the first of each are duplicates."""
    body = {"specversion": "1.0", "id": f"d-{n % DUPLICATE_IDS}", "source": "/bench/dup",
            "type": "bench.tick", "data": {"n": n % DUPLICATE_IDS}}
    return {"url": "/", "content": json.dumps(body).encode(),
            "headers": {"content-type": "application/cloudevents+json"}}


def start(n: int) -> dict[str, Any]:
    return {"url": "/workflows/http_bench_noop", "json": {"input": n}}


def healthz(n: int) -> dict[str, Any]:
    return {"method": "GET", "url": "/healthz"}


@dataclass(frozen=True, slots=True)
class Sub:
    make: Request
    ok_status: int
    source: str | None = None
    """the CloudEvents source whose stored rows are counted after the run"""


SCENARIOS: dict[str, Sub] = {
    "GET /healthz (no db)": Sub(healthz, 200),
    "POST / structured": Sub(structured, 202, "/bench/structured"),
    "POST / binary": Sub(binary, 202, "/bench/binary"),
    "POST / duplicates": Sub(duplicate, 202, "/bench/dup"),
    "POST /workflows start": Sub(start, 202),
}


async def run_scenario(
    name: str, make: Request, port: int, *, seconds: float, clients: int, max_requests: int,
    bar: Any = None,
) -> tuple[Result, Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    issued = 0
    deadline = time.perf_counter() + seconds

    async def client(task_status: trio.TaskStatus[None]) -> None:
        nonlocal issued
        conn = await LeanConnection.open("127.0.0.1", port)
        try:
            await conn.request(encode_request(conn.host, healthz(0)))  # connect before the clock
            task_status.started()
            await go.wait()
            while time.perf_counter() < deadline and issued < max_requests:
                issued += 1
                raw = encode_request(conn.host, make(issued + run_salt))
                t = time.perf_counter()
                with trio.fail_after(30):
                    status, _ = await conn.request(raw)
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[status] += 1
        finally:
            await conn.aclose()

    async def ticker() -> None:
        while time.perf_counter() < deadline and issued < max_requests:
            if bar is not None:
                bar.update(time.perf_counter() - t0)
            await trio.sleep(0.2)

    go = trio.Event()
    run_salt = int(uuid.uuid4().int % 10**9) * 1000
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            await nursery.start(client)
        deadline = time.perf_counter() + seconds
        t0 = time.perf_counter()
        go.set()
        nursery.start_soon(ticker)
    elapsed = time.perf_counter() - t0
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    extra = {"clients": clients, "non_2xx": sum(statuses.values()) - ok}
    return Result(name, ok, elapsed, latencies, extra), statuses


def _count(dsn: str, schema: str, query: str, params: tuple[Any, ...]) -> int:
    rows = schema_rows(dsn, schema, query, params)
    return int(rows[0][0]) if rows else 0


async def _check(dsn: str, schema: str, name: str, sub: Sub, statuses: Counter[int]) -> str:
    answered = sum(statuses.values())
    require(statuses[sub.ok_status] == answered,
            f"HTTP {name}: answers {dict(statuses)}, expected all {sub.ok_status}")
    if sub.source is not None:
        stored = await trio.to_thread.run_sync(
            _count, dsn, schema, "SELECT count(*) FROM workflow_events WHERE source = %s",
            (sub.source,))
        expected = min(DUPLICATE_IDS, answered) if sub.make is duplicate else answered
        require(stored == expected,
                f"HTTP {name}: {stored} events stored for {answered} acknowledged "
                f"(expected {expected})")
        return f"{stored} stored" + (" once each" if sub.make is duplicate else " = 202s")
    if sub.make is start:
        query = ("SELECT count(*) FROM workflow_instances "
                 "WHERE workflow_name = 'http_bench_noop' AND status = 'completed'")
        with trio.move_on_after(60):
            while await trio.to_thread.run_sync(_count, dsn, schema, query, ()) < answered:
                await trio.sleep(0.2)
        done = await trio.to_thread.run_sync(_count, dsn, schema, query, ())
        require(done == answered, f"HTTP {name}: {done} of {answered} started workflows completed")
        return f"all {answered} completed"
    return f"all {sub.ok_status}"


async def http_intake(run: Run) -> list[Result]:
    """The suite's scenario: every sub-scenario against one hypercorn-trio server."""
    s = run.sizes
    return await _run_all(run.dsn, seconds=s.http_seconds, clients=s.http_clients,
                          max_requests=s.http_max_requests, resumes=s.http_resumes,
                          resume_rate=s.http_resume_rate, run=run)


async def _run_all(dsn: str, *, seconds: float, clients: int, max_requests: int,
                   resumes: int, resume_rate: float, run: Run | None = None) -> list[Result]:
    check_local(dsn)
    schema = new_schema("bench_http")
    results = []
    try:
        proc, port = await start_server(
            dsn, schema, workflows="loadtests.http_intake,loadtests.http_resume", backlog=256)
        try:
            async with trio.open_nursery() as nursery:
                assert proc.stderr is not None
                nursery.start_soon(drain, proc.stderr)
                for name, sub in SCENARIOS.items():
                    label = f"HTTP {name}"
                    bar = run.progress(label, seconds) if run is not None else None
                    result, statuses = await run_scenario(
                        label, sub.make, port, seconds=seconds, clients=clients,
                        max_requests=max_requests, bar=bar)
                    if bar is not None:
                        bar.close()
                    result.checked = await _check(dsn, schema, name, sub, statuses)
                    results.append(result)
                results += await resume_latency(dsn, schema, port, n=resumes, rate=resume_rate)
                nursery.cancel_scope.cancel()
        finally:
            await stop_server(proc)
    finally:
        drop_schema(dsn, schema)  # the server's App created it
    return results


async def main(args: argparse.Namespace) -> None:
    results = await _run_all(args.dsn, seconds=args.seconds, clients=args.clients,
                             max_requests=args.max_requests, resumes=args.resumes,
                             resume_rate=args.resume_rate)
    print(
        f"hypercorn -k trio (1 worker) on 127.0.0.1, PostgreSQL {args.dsn}, "
        f"{args.clients} keep-alive clients, {args.seconds:g} s per scenario"
    )
    print_table([r.row(None) for r in results])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python loadtests/http_intake.py")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--seconds", type=float, default=Sizes().http_seconds)
    parser.add_argument("--clients", type=int, default=Sizes().http_clients)
    parser.add_argument("--max-requests", type=int, default=Sizes().http_max_requests)
    parser.add_argument("--resumes", type=int, default=Sizes().http_resumes)
    parser.add_argument("--resume-rate", type=float, default=Sizes().http_resume_rate)
    trio.run(main, parser.parse_args())
