"""A month of durable time in milliseconds: sleeps, event timeouts and retry back-offs run in
the environment's virtual time, on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    EventTimeoutError,
    RetryPolicy,
    WorkflowContext,
    activity,
    sleep,
    testing,
    wait_event,
    workflow,
)

DAY = 24 * 3600.0


@activity(transactional=False)
async def tsk_record(ctx: ActivityContext, what: str) -> str:
    return what


@workflow
async def tsk_invoice(ctx: WorkflowContext, order: str) -> dict[str, object]:
    started = ctx.now()
    await sleep(ctx, 30 * DAY)
    slept = ctx.now()
    try:
        paid = await wait_event(ctx, f"paid.{order}", timeout=7 * DAY)
    except EventTimeoutError:
        outcome = await tsk_record(ctx, "reminder sent")
    else:
        outcome = await tsk_record(ctx, f"paid {paid.data}")
    return {"outcome": outcome, "started": started.timestamp(), "slept": slept.timestamp(),
            "ended": ctx.now().timestamp()}


@pytest.fixture(params=["sqlite", "postgres"])
def url_and_config(request: pytest.FixtureRequest) -> tuple[str | None, AppConfig | None]:
    if request.param == "sqlite":
        return None, None
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn, AppConfig(schema=request.getfixturevalue("pg_schema"))


async def test_a_month_of_sleep_and_a_week_of_timeout_in_virtual_time(
        url_and_config: tuple[str | None, AppConfig | None]) -> None:
    url, config = url_and_config
    wall = time.perf_counter()
    async with testing.environment([tsk_invoice, tsk_record], url, config=config) as env:
        t0 = env.time()
        iid = await env.app.start(tsk_invoice, "o-1")
        result = await env.result(iid)
        elapsed = env.time() - t0
    print(f"\n37 virtual days on {(url and 'postgres') or 'sqlite'}: "
          f"{time.perf_counter() - wall:.3f} s wall time")
    assert result["outcome"] == "reminder sent"  # the timeout branch
    assert result["slept"] - result["started"] == pytest.approx(30 * DAY, abs=5)
    assert result["ended"] - result["slept"] == pytest.approx(7 * DAY, abs=5)
    assert 37 * DAY <= elapsed < 37 * DAY + 60


async def test_the_event_branch_when_the_payment_arrives_in_time() -> None:
    async with testing.environment([tsk_invoice, tsk_record]) as env:
        t0 = env.now()
        iid = await env.app.start(tsk_invoice, "o-2")
        await env.advance(timedelta(days=31))
        await env.until_waiting(iid)
        assert env.now() - t0 >= timedelta(days=31)
        with env.frozen():  # the 7-day timeout cannot fire while the event is sent
            await env.app.send_event(Event(id="e-1", type="paid.o-2", source="test", data=42))
        result = await env.result(iid)
    assert result["outcome"] == "paid 42"
    assert result["ended"] - result["slept"] < DAY  # it did not wait out the timeout


def test_the_environment_says_what_clock_it_needs() -> None:
    async def main() -> None:
        with pytest.raises(testing.ClockError, match="MockClock"):
            async with testing.environment([tsk_invoice]):
                pass

    trio.run(main)


_attempts: list[float] = []


@activity(transactional=False, retry=RetryPolicy(
    max_attempts=4, initial_interval=3600.0, backoff_coefficient=2.0, max_interval=4 * 3600.0))
async def tsk_flaky(ctx: ActivityContext) -> int:
    raise RuntimeError("not yet")


@workflow
async def tsk_retrying(ctx: WorkflowContext) -> int:
    return await tsk_flaky(ctx)


async def test_retry_backoffs_of_hours_run_in_virtual_time() -> None:
    async with testing.environment([tsk_retrying, tsk_flaky]) as env:
        def flaky(ctx: ActivityContext) -> int:
            _attempts.append(env.time())
            if len(_attempts) < 4:
                raise RuntimeError("not yet")
            return len(_attempts)

        env.replace(tsk_flaky, flaky)
        t0 = env.time()
        result = await env.result(await env.app.start(tsk_retrying))
    assert result == 4
    gaps = [b - a for a, b in itertools.pairwise(_attempts)]
    # 1 h, 2 h, 4 h apart (each with up to 10 % jitter), all in virtual time
    for gap, base in zip(gaps, [3600.0, 7200.0, 4 * 3600.0], strict=True):
        assert base <= gap <= base * 1.1 + 1
    assert _attempts[0] - t0 < 60
