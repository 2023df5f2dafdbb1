"""Ctrl+C as one plain ``KeyboardInterrupt``.

Trio raises ``KeyboardInterrupt`` in whichever task runs when SIGINT arrives, or in the main
task at its next checkpoint. Either way it passes through nurseries, and each wraps it in a
``BaseExceptionGroup``: a user who presses Ctrl+C would see an exception-group traceback from
inside the library. The app's outermost nursery turns a group that holds nothing but
``KeyboardInterrupt`` (and the ``Cancelled`` it caused) back into one ``KeyboardInterrupt``;
any other error keeps its group, untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


def _only_interrupts(group: BaseExceptionGroup[BaseException]) -> bool:
    interrupts, rest = group.split(KeyboardInterrupt)
    if interrupts is None:
        return False
    return rest is None or rest.split(trio.Cancelled)[1] is None


def one_interrupt(exc: BaseException) -> BaseException:
    """``exc``, or a plain ``KeyboardInterrupt`` when ``exc`` is a group of interrupts only."""
    if isinstance(exc, BaseExceptionGroup) and _only_interrupts(exc):
        interrupt = KeyboardInterrupt()
        interrupt.__suppress_context__ = True
        return interrupt
    return exc


@asynccontextmanager
async def interrupt_as_one() -> AsyncIterator[None]:
    """Re-raise a group of interrupts leaving the block as one plain ``KeyboardInterrupt``."""
    try:
        yield
    except BaseExceptionGroup as group:
        if _only_interrupts(group):
            raise KeyboardInterrupt from None
        raise
