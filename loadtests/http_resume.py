"""POST -> workflow resumed: the latency from an HTTP client sending a CloudEvent to the waiting
workflow running again, through a real hypercorn-trio server (the one ``http_intake`` starts).

``n`` workflows ``http_bench_waiter`` are started over HTTP and left waiting for
``bench.resume``; then one targeted event per workflow (``romancyinstanceid``) is POSTed at a
fixed pace (moderate load: well below the intake's capacity) by a few keep-alive clients. The
activity after ``wait_event`` stamps ``time.time()`` when it runs, and the workflow returns the
stamp; latency = that stamp - the client's clock just before it sent the POST (one machine,
one clock). Also reported: the POST's own answer time (202 = committed).
Checks: every POST answered 202 with the instance in ``delivered_to``; every workflow completed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import trio

from romancy_trio import ActivityContext, WorkflowContext, activity, wait_event, workflow

from ._common import Result, require, schema_rows
from ._lean_http import LeanConnection, encode_request


@activity(transactional=False)
async def http_bench_stamp(ctx: ActivityContext) -> float:
    return time.time()


@workflow
async def http_bench_waiter(ctx: WorkflowContext) -> float:
    await wait_event(ctx, "bench.resume")
    return await http_bench_stamp(ctx)


def _event(iid: str) -> dict[str, Any]:
    body = {"specversion": "1.0", "id": f"r-{iid}", "source": "/bench/resume",
            "type": "bench.resume", "romancyinstanceid": iid, "data": {"iid": iid}}
    return {"url": "/", "content": json.dumps(body).encode(),
            "headers": {"content-type": "application/cloudevents+json"}}


async def _start_waiters(port: int, salt: str, n: int, clients: int) -> list[str]:
    ids = [f"resume-{salt}-{i}" for i in range(n)]

    async def starter(k: int) -> None:
        conn = await LeanConnection.open("127.0.0.1", port)
        try:
            for iid in ids[k::clients]:
                req = {"url": "/workflows/http_bench_waiter",
                       "json": {"input": None, "instance_id": iid}}
                status, body = await conn.request(encode_request(conn.host, req))
                require(status == 202, f"start {iid}: HTTP {status} {body!r}")
        finally:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(starter, k)
    return ids


async def resume_latency(dsn: str, schema: str, port: int, *, n: int, rate: float,
                         clients: int = 4) -> list[Result]:
    salt = f"{time.time_ns():x}"
    ids = await _start_waiters(port, salt, n, clients)
    waiting_q = ("SELECT count(*) FROM workflow_instances WHERE workflow_name = "
                 "'http_bench_waiter' AND status = 'waiting'")
    with trio.fail_after(120):
        while (await trio.to_thread.run_sync(schema_rows, dsn, schema, waiting_q))[0][0] < n:
            await trio.sleep(0.1)

    sent: dict[str, float] = {}
    answer_ms: list[float] = []
    t0 = time.perf_counter() + 0.05

    async def poster(k: int) -> None:
        conn = await LeanConnection.open("127.0.0.1", port)
        try:
            for i in range(k, n, clients):
                await trio.sleep_until(trio.current_time() + max(
                    0.0, t0 + i / rate - time.perf_counter()))
                iid = ids[i]
                raw = encode_request(conn.host, _event(iid))
                t = time.perf_counter()
                sent[iid] = time.time()
                status, body = await conn.request(raw)
                answer_ms.append((time.perf_counter() - t) * 1000)
                require(status == 202 and iid in json.loads(body)["delivered_to"],
                        f"resume event for {iid}: HTTP {status} {body!r}")
        finally:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(poster, k)
    elapsed = time.perf_counter() - t0

    done_q = ("SELECT instance_id, result FROM workflow_instances WHERE workflow_name = "
              "'http_bench_waiter' AND status = 'completed'")
    rows: list[tuple[Any, ...]] = []
    with trio.move_on_after(60):
        while len(rows := await trio.to_thread.run_sync(schema_rows, dsn, schema, done_q)) < n:
            await trio.sleep(0.1)
    require(len(rows) == n, f"POST->resumed: {len(rows)} of {n} workflows completed")
    resumed = [(float(json.loads(r) if isinstance(r, str) else r) - sent[iid]) * 1000
               for iid, r in rows]
    extra = {"paced_per_s": rate, "clients": clients}
    checked = f"{n} x 202 delivered, {n} resumed"
    return [
        Result("HTTP POST -> 202 (paced)", n, elapsed, answer_ms, extra, checked, rate=False),
        Result("HTTP POST -> workflow resumed (paced)", n, elapsed, resumed, extra, checked,
               rate=False),
    ]
