"""Waits for the state a test asserts, never for time."""

from __future__ import annotations

import logging

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
