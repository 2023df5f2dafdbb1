"""Where activities that do not run on Trio run: worker threads and one asyncio event loop.

* Plain ``def`` activities run in Trio worker threads, at most ``AppConfig.activity_threads``
  at once (one :class:`trio.CapacityLimiter`). A cancelled thread (timeout, workflow cancel,
  shutdown) cannot be killed: it is abandoned, its result ignored, and it keeps its limiter slot
  until it returns.
* ``loop="asyncio"`` activities run as tasks on one asyncio event loop per worker, in its own
  thread: started on first use, and stopped (its remaining tasks cancelled, the thread joined)
  when the scheduler stops. The loop persists between calls, since asyncio clients bind to the
  loop they were created on. Cancelling the Trio side cancels the asyncio task and waits for it
  to finish unwinding.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import outcome
import trio


class AsyncioLoop:
    """One asyncio event loop in a thread of its own, started lazily; see the module doc."""

    def __init__(self) -> None:
        self._lock = trio.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._thread is not None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()

    async def _ensure(self) -> asyncio.AbstractEventLoop:
        async with self._lock:
            if self._closed:
                raise RuntimeError("the app's asyncio loop is closed (the app is shutting down)")
            if self._thread is None:
                self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                                name="romancy-asyncio")
                self._thread.start()
            await trio.to_thread.run_sync(self._ready.wait)
        assert self._loop is not None
        return self._loop

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run ``await fn(*args, **kwargs)`` as a task on the asyncio loop; return its result.
        Trio cancellation cancels the task (and waits until it has finished)."""
        loop = await self._ensure()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[asyncio.Task[Any]] = []
        result: list[outcome.Outcome[Any]] = []

        def finished(task: asyncio.Task[Any]) -> None:  # on the Trio thread
            if task.cancelled():  # not by us (we re-raise Cancelled): by the activity itself
                result.append(outcome.Error(RuntimeError("the asyncio task was cancelled")))
            else:
                result.append(outcome.capture(task.result))
            done.set()

        def start() -> None:  # on the asyncio thread
            task = loop.create_task(_invoke(fn, args, kwargs))
            box.append(task)
            task.add_done_callback(lambda t: token.run_sync_soon(finished, t))

        loop.call_soon_threadsafe(start)
        try:
            await done.wait()
        finally:
            if not done.is_set():  # cancelled: `start` ran (or runs) before this
                loop.call_soon_threadsafe(lambda: box[0].cancel())
                with trio.CancelScope(shield=True):
                    await done.wait()
        return result[0].unwrap()

    async def aclose(self) -> None:
        """Stop the loop (cancelling what still runs on it) and join its thread. Shielded: it
        runs while the scheduler is being cancelled, and must not leave the thread behind."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                self._closed = True
                if self._thread is None:
                    return
                await trio.to_thread.run_sync(self._ready.wait)
                assert self._loop is not None and self._stop is not None
                self._loop.call_soon_threadsafe(self._stop.set)
                await trio.to_thread.run_sync(self._thread.join)


async def _invoke(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
    return await fn(*args, **kwargs)


class ActivityHosts:
    """The thread limiter and the asyncio loop of one worker."""

    def __init__(self, threads: int) -> None:
        self.threads = trio.CapacityLimiter(threads)
        self.asyncio = AsyncioLoop()

    async def in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread; abandoned if cancelled."""
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.threads,
                                             abandon_on_cancel=True)


@asynccontextmanager
async def open_activity_hosts(threads: int) -> AsyncIterator[ActivityHosts]:
    hosts = ActivityHosts(threads)
    try:
        yield hosts
    finally:
        await hosts.asyncio.aclose()
