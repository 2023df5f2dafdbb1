"""A test environment whose durable time is virtual: a month of sleeps, timeouts and retry
back-offs passes in milliseconds. Built on the public facade only (a guest)."""

from __future__ import annotations

import inspect
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, nullcontext
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
import trio.testing

from romancy_notify import LinkTimeouts, NotifyConfig

from .. import Activity, App, AppConfig, InstanceInfo, Workflow, WorkflowStatus, open_app

_DAY = 24 * 3600.0
_SLOW = 1000 * _DAY
"""Every periodic timer of the runtime (heartbeat, fallback re-check, liveness probe,
maintenance) and the runtime's own I/O timeouts run on this scale of virtual time: then the
next deadline is nearly always a workflow's own, and time skipping jumps straight to it (a
daily timer would be woken ~30 times by a 30-day sleep, and each wake-up's database I/O,
during which every task is blocked, lets the autojump run on to the next one)."""


class ClockError(RuntimeError):
    """The environment was opened without Trio's `trio.testing.MockClock` running."""


class _VirtualTimeConfig(AppConfig):
    """An `AppConfig` whose leases last virtual ages, while PostgreSQL connections keep the
    keepalives of a normal lease: the network is not virtual."""

    def link_timeouts(self) -> LinkTimeouts:
        return LinkTimeouts.within(AppConfig().lease_ttl)


def virtual_config(config: AppConfig | None, clock: Callable[[], float]) -> AppConfig:
    """``config`` (or the defaults) with the durable clock ``clock`` and every periodic
    timer slowed to once per `_SLOW` (leases then last three times that, in virtual time)."""
    base = config or AppConfig()
    values = {f.name: getattr(base, f.name) for f in fields(AppConfig)}
    values.update(
        clock=clock, lease_ttl=3 * _SLOW, heartbeat_interval=_SLOW, fallback_interval=_SLOW,
        sqlite_poll_interval=None, takeover_check_interval=_SLOW, maintenance_interval=_SLOW,
        member_interval=_SLOW, rebalance_after=None)
    return _VirtualTimeConfig(**values)


class Environment:
    """What `environment` yields: the `app`, its virtual clock, activity stand-ins and waits."""

    def __init__(self, app: App, clock: trio.testing.MockClock, epoch: float) -> None:
        self.app = app
        self._clock = clock
        self._epoch = epoch
        self._replaced: list[tuple[Activity[..., Any], Callable[..., Any], str]] = []

    def time(self) -> float:
        """The durable clock: seconds since the Unix epoch, in virtual time."""
        return self._epoch + self._clock.current_time()

    def now(self) -> datetime:
        """The durable clock as an aware UTC datetime (what ``ctx.now()`` records)."""
        return datetime.fromtimestamp(self.time(), UTC)

    async def advance(self, by: float | timedelta) -> None:
        """Move virtual time forward by ``by`` at once; whatever fell due runs before this
        returns (as far as it can run without more time passing)."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if not seconds >= 0:
            raise ValueError(f"advance() needs a duration >= 0, not {by!r}")
        self._clock.jump(seconds)
        await trio.testing.wait_all_tasks_blocked()

    def replace(self, activity: Activity[..., Any], fake: Callable[..., Any]) -> None:
        """Run ``fake`` (same parameters) wherever a workflow calls ``activity``, until the
        environment closes. Its result is recorded in history like the real one's."""
        if not isinstance(activity, Activity):
            raise TypeError(f"replace() takes an @activity, not {activity!r}")
        if not callable(fake):
            raise TypeError(f"replace(): the stand-in for {activity.name!r} must be callable")
        self._replaced.append((activity, activity.fn, activity.runs_on))
        activity.fn = fake
        if activity.runs_on != "asyncio":
            activity.runs_on = "trio" if inspect.iscoroutinefunction(fake) else "thread"

    def _restore(self) -> None:
        while self._replaced:
            activity, fn, runs_on = self._replaced.pop()
            activity.fn, activity.runs_on = fn, runs_on  # type: ignore[assignment]

    async def wait_for_status(self, instance_id: str, *statuses: WorkflowStatus | str,
                              skip_time: bool = True) -> InstanceInfo:
        """Wait until the instance has one of ``statuses``; return its `InstanceInfo`.

        ``skip_time=True``: virtual time keeps jumping to the next deadline meanwhile (e.g.
        "until it completed", past a 30-day sleep). False: time stands still until the
        status is reached - "until it is waiting" for an event, so that its timeout cannot
        fire before the test sends the event."""
        wanted = {WorkflowStatus(s) for s in statuses}
        if not wanted:
            raise ValueError("wait_for_status() needs at least one status")
        with self.frozen() if not skip_time else nullcontext():
            while True:
                info = await self.app.status(instance_id)
                if info.status in wanted:
                    return info
                if info.status.is_terminal:
                    raise AssertionError(
                        f"instance {instance_id!r} ended {info.status} (error: {info.error}) "
                        f"while waiting for {' or '.join(sorted(wanted))}")
                await trio.testing.wait_all_tasks_blocked()

    async def until_waiting(self, instance_id: str) -> InstanceInfo:
        """Wait, with time standing still, until the instance waits (an event, a message,
        a timer)."""
        return await self.wait_for_status(instance_id, WorkflowStatus.WAITING, skip_time=False)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Virtual time stands still inside (e.g. while the test sends an event that must
        arrive before a timeout: database I/O lets every task block, which lets time jump)."""
        threshold = self._clock.autojump_threshold
        self._clock.autojump_threshold = math.inf
        try:
            yield
        finally:
            self._clock.autojump_threshold = threshold

    async def result(self, instance_id: str, *,
                     timeout: float | timedelta = timedelta(days=3650)) -> Any:
        """The instance's result (or its error raised), skipping virtual time until it ends;
        `romancy_trio.TimeoutWaitingError` after ``timeout`` of virtual time (by default ten
        years: an instance that never ends, e.g. one no worker here may resume)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        return await self.app.result(instance_id, timeout=seconds)


@asynccontextmanager
async def environment(workflows: Iterable[Workflow[Any, Any] | Activity[..., Any]] | None = None,
                      url: str | None = None, *, config: AppConfig | None = None,
                      start: datetime | None = None, idle: float = 0.1
                      ) -> AsyncIterator[Environment]:
    """An `App` whose durable time is virtual, on a temporary SQLite file (or ``url``, e.g. a
    PostgreSQL database: give ``config.schema`` a fresh schema there).

    Needs Trio's `trio.testing.MockClock` as the clock of the run: in pytest with the anyio
    plugin, an ``anyio_backend`` fixture returning
    ``("trio", {"clock": trio.testing.MockClock()})``; in a script,
    ``trio.run(main, clock=trio.testing.MockClock())``. Inside the environment virtual time
    jumps to the next deadline once every task has been blocked for ``idle`` seconds of real
    time (the clock's ``autojump_threshold``, restored on exit): not 0, since a task waiting
    for the database (a worker thread, a socket) counts as blocked, and time must not run on
    while a query is under way. ``start``: the virtual time at the start (default: now)."""
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise ClockError(
            "testing.environment() needs trio.testing.MockClock() as the Trio clock: "
            "trio.run(main, clock=MockClock()), or in pytest an anyio_backend fixture "
            "returning ('trio', {'clock': MockClock()})")
    if not 0 < idle < math.inf:
        raise ValueError(f"idle must be a number of seconds > 0, not {idle!r}")
    epoch = (start.timestamp() if start is not None else time.time()) - clock.current_time()

    def durable_now() -> float:  # from any thread: MockClock.current_time reads two floats
        return epoch + clock.current_time()

    async with AsyncExitStack() as stack:
        stack.callback(setattr, clock, "autojump_threshold", clock.autojump_threshold)
        clock.autojump_threshold = idle
        if url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="romancy-test-"))
            url = f"sqlite:///{folder}/test.db"
        app = await stack.enter_async_context(open_app(
            url, workflows=workflows, config=virtual_config(config, durable_now),
            notify_config=NotifyConfig(fallback_interval=_SLOW, liveness_interval=_SLOW,
                                       probe_timeout=_SLOW)))
        env = Environment(app, clock, epoch)
        stack.callback(env._restore)
        yield env
