"""Durable schedules: one instance per tick with 3 worker processes, the catch-up policy after
every worker was stopped, pause/resume/update/delete/list, bad input."""

from __future__ import annotations

import itertools
import json
import math
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from romancy_trio import InvalidInputError, ScheduleNotFoundError, open_app
from romancy_trio._schedules import Rule, plan
from romancy_trio.storage._placeholders import translate

from ._procs import start_worker, stop
from .compose_proc import ALL, COMPOSE_DDL, comp_ticked
from .conftest import Backend, fetch

POLICIES = ("all", "one", "skip")


def test_plan_follows_the_policy() -> None:
    rule = Rule(None, 1.0, "UTC")
    assert plan(rule, "skip", 10.0, 10.5) == ([10.0], 11.0)  # one due tick: always started
    assert plan(rule, "all", 10.0, 13.5) == ([10.0, 11.0, 12.0, 13.0], 14.0)
    assert plan(rule, "one", 10.0, 13.5) == ([13.0], 14.0)
    assert plan(rule, "skip", 10.0, 13.5) == ([], 14.0)
    cron = Rule("30 2 * * *", None, "Europe/Berlin")
    start = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    # 29 March 2026 has no 02:30 in Berlin (clocks jump from 02:00 CET to 03:00 CEST): the
    # tick comes at the jump, like cron's, then 02:30 CEST (00:30 UTC) the day after
    nxt = cron.after(start)
    assert datetime.fromtimestamp(nxt, UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert datetime.fromtimestamp(cron.after(nxt), UTC) == datetime(2026, 3, 30, 0, 30,
                                                                    tzinfo=UTC)


async def _ticks(app: Any) -> dict[str, list[tuple[float, dict[str, str], float]]]:
    rows = await fetch(app, "SELECT instance_id, attributes, created_at FROM workflow_instances "
                            "WHERE workflow_name = 'comp_ticked'")
    out: dict[str, list[tuple[float, dict[str, str], float]]] = {p: [] for p in POLICIES}
    for iid, attributes, created in rows:
        sid, at = iid.split("@")
        out[sid.removeprefix("tick-")].append(
            (datetime.fromisoformat(at).timestamp(), json.loads(attributes), float(created)))
    return {k: sorted(v, key=lambda t: t[0]) for k, v in out.items()}


async def test_one_instance_per_tick_and_catch_up(backend: Backend) -> None:
    b = backend
    module = "tests.romancy_trio.compose_proc"
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        for ddl in COMPOSE_DDL:
            await app.store.db.execute(*translate(ddl, (), app.store.db.dialect))
        workers = [start_worker(b.url, b.config.schema, f"sw{i}", module=module)
                   for i in range(3)]
        try:
            start = datetime.fromtimestamp(math.ceil(time.time()) + 2, UTC)
            for policy in POLICIES:
                await app.schedule(comp_ticked, policy, id=f"tick-{policy}", interval=1.0,
                                   catchup=policy, start_at=start)  # type: ignore[arg-type]

            async def ticked(n: int, after: float = 0.0) -> bool:
                ticks = await _ticks(app)
                return all(len([t for t in ticks[p] if t[0] > after]) >= n for p in POLICIES)

            with trio.fail_after(120):
                while not await ticked(10):  # ten seconds of ticks with 3 workers
                    await trio.sleep(0.2)
            for w in workers:
                w.send_signal(signal.SIGKILL)
            for w in workers:
                w.wait(timeout=10)
                stop(w)  # (dead: closes its pipes)
            stopped = time.time()
            await trio.sleep(5)  # the outage: nothing runs
            restarted = time.time()
            workers = [start_worker(b.url, b.config.schema, f"sw{i}b", module=module)
                       for i in range(3)]
            with trio.fail_after(120):
                while not await ticked(3, after=restarted):
                    await trio.sleep(0.2)
            for policy in POLICIES:
                await app.pause_schedule(f"tick-{policy}")
            with trio.fail_after(120):  # every started tick has run
                while [i for i in await app.list_instances(workflow="comp_ticked", limit=10_000)
                       if not i.status.is_terminal]:
                    await trio.sleep(0.2)
        finally:
            for w in workers:
                stop(w)
        ticks = await _ticks(app)
        ran = Counter(r[0] for r in await fetch(app, "SELECT instance_id FROM comp_ticks"))
        assert set(ran.values()) == {1}  # every instance ran once
        assert len(ran) == sum(len(v) for v in ticks.values())
        for policy in POLICIES:
            times = [t[0] for t in ticks[policy]]
            assert times[0] == start.timestamp()
            steps = [round(b2 - a2, 6) for a2, b2 in itertools.pairwise(times)]
            gaps = [i for i, s in enumerate(steps) if s != 1.0]
            if policy == "all":  # every tick of the outage caught up: no gap at all
                assert gaps == [], (policy, steps)
                assert any(stopped < t < restarted for t in times)
                continue
            assert len(gaps) == 1, (policy, steps)  # the outage, nowhere else
            before, after = ticks[policy][gaps[0]], ticks[policy][gaps[0] + 1]
            assert before[0] <= stopped and steps[gaps[0]] >= 3
            missed = [t for t in ticks[policy] if int(t[1].get("romancy.missed_ticks", "0"))]
            if policy == "one":  # the latest missed tick was started, once, on restart
                assert missed == [after] and after[2] >= restarted
                assert [t for t in times if stopped < t < restarted] in ([], [after[0]])
            else:  # skip: none of the outage's ticks
                assert missed == [] and after[0] >= restarted
                assert [t for t in times if stopped < t < restarted] == []


async def test_schedule_operations(backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config,
                        run_workers=False) as app:
        sid = await app.schedule(comp_ticked, "x", id="nightly", cron="30 2 * * *",
                                 timezone="Europe/Berlin", catchup="skip")
        info = await app.get_schedule(sid)
        assert (info.cron, info.timezone, info.catchup, info.paused, info.input) == (
            "30 2 * * *", "Europe/Berlin", "skip", False, "x")
        assert info.next_tick_at.astimezone(
            __import__("zoneinfo").ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "02:30"
        await app.schedule(comp_ticked, "y", id="nightly", interval=60)  # an update
        info = await app.get_schedule(sid)
        assert (info.cron, info.interval, info.input) == (None, 60.0, "y")
        await app.pause_schedule(sid)
        assert (await app.get_schedule(sid)).paused
        await app.resume_schedule(sid)
        resumed = await app.get_schedule(sid)
        assert not resumed.paused and resumed.next_tick_at.timestamp() > time.time()
        assert [s.schedule_id for s in await app.list_schedules()] == ["nightly"]
        await app.delete_schedule(sid)
        assert await app.list_schedules() == []
        with pytest.raises(ScheduleNotFoundError):
            await app.get_schedule(sid)
        with pytest.raises(ScheduleNotFoundError):
            await app.pause_schedule("nope")
        for bad in ({"cron": "61 * * * *"}, {"cron": "* * *"}, {"interval": 0},
                    {"interval": 5, "cron": "* * * * *"}, {},
                    {"interval": 5, "timezone": "Mars/Olympus"},
                    {"interval": 5, "catchup": "most"}):
            with pytest.raises(InvalidInputError):
                await app.schedule(comp_ticked, "z", id="bad", **bad)
        with pytest.raises(InvalidInputError):
            await app.schedule(comp_ticked, 42, id="bad-input", interval=5)
        assert await app.list_schedules() == []
