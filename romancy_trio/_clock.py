"""The app's durable clock: the one source of "now" for every deadline and timestamp the
runtime stores (wake-up times, event and receive timeouts, retry back-offs, lease expiry on
SQLite). Real time (``time.time``) unless the app's `AppConfig.clock` says otherwise - e.g.
`romancy_trio.testing`, whose virtual clock lets a 30-day sleep pass in milliseconds.

``open_app`` installs its clock in a context variable for its own tasks (and the worker
threads they start, which copy the context), so no call site needs it passed along.
A clock must be callable from any thread (SQLite's ``romancy_now()`` runs in a worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

Clock = Callable[[], float]
"""Seconds since the Unix epoch, like ``time.time``."""

_CLOCK: ContextVar[Clock | None] = ContextVar("romancy_clock", default=None)


def now() -> float:
    """The durable clock's time (the app's clock, else ``time.time()``)."""
    clock = _CLOCK.get()
    return time.time() if clock is None else clock()


def sql_now() -> float | None:
    """What a query that compares with "now" is given: None for real time (the query then
    uses the database server's clock, as it always did), else the app's clock."""
    clock = _CLOCK.get()
    return None if clock is None else clock()


def install(clock: Clock | None) -> Token[Clock | None]:
    """Make ``clock`` the durable clock of this task and those it starts (None: real time)."""
    return _CLOCK.set(clock)


def uninstall(token: Token[Clock | None]) -> None:
    _CLOCK.reset(token)


@contextmanager
def using(clock: Clock | None) -> Iterator[None]:
    """Make ``clock`` the durable clock of the code inside (None: real time)."""
    token = _CLOCK.set(clock)
    try:
        yield
    finally:
        _CLOCK.reset(token)
