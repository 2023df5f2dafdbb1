"""Waits for the state a test asserts, never for time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from romancy_trio import App


async def until_idle(app: App, timeout: float = 20) -> None:
    """Until the worker holds no run. A run's task ends a moment after its last commit (the
    status, result or wait it wrote is visible first), and counts as running until it has."""
    with trio.fail_after(timeout):
        while (stats := app.statistics()) is not None and stats.running:
            await trio.sleep(0.01)


class LogSeen(logging.Handler):
    """Added to a logger: ``seen`` once a record containing ``text`` was logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or self.text in record.getMessage()


@asynccontextmanager
async def failing_if_stuck(progress: Callable[[], Awaitable[object]], idle: float = 60,
                           every: float = 0.2) -> AsyncIterator[None]:
    """A hang guard for a long block that a loaded machine must not trip: the block fails
    (AssertionError) only if ``await progress()``, asked every ``every`` seconds, stayed the
    same for ``idle`` seconds - however long the block takes in all."""
    stuck = False

    async def watch(scope: trio.CancelScope) -> None:
        nonlocal stuck
        last, since = await progress(), trio.current_time()
        while trio.current_time() - since < idle:
            await trio.sleep(every)
            if (now := await progress()) != last:
                last, since = now, trio.current_time()
        stuck = True
        scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        yield
        nursery.cancel_scope.cancel()
    if stuck:
        raise AssertionError(f"no progress for {idle:g} s: {await progress()!r}")
