"""Statements and round trips as the driver sees them (issue #22: count them, print them).

`counting()` wraps `romancy_notify.pg.TrioConnection` - every PostgreSQL connection of the
library, the pool's, the listener's and the worker session's - for the duration of a block:
each ``execute`` (or ``run``, its cursor-reusing twin) is a statement (BEGIN and COMMIT
included); a statement outside a pipeline is a round trip, and so is each outermost pipeline
block (it ends in one Sync). Durable commits are the COMMITs (PostgreSQL makes an implicit
transaction that wrote durable too, but the library sends its writes inside BEGIN/COMMIT or as
one autocommit statement: those are counted as ``autocommit writes``)."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from romancy_notify.pg import TrioConnection

_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")


@dataclass
class Counts:
    statements: int = 0
    round_trips: int = 0
    commits: int = 0
    autocommit_writes: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    sent: list[tuple[str, Any]] | None = None
    """With ``counting(keep=True)``: every statement's text and parameters, in order."""
    sent_on: list[int] | None = None
    """With ``counting(keep=True)``: for each of ``sent``, the connection it went on (an id,
    to tell one transaction's BEGIN/COMMIT from another's)."""

    def per_workflow(self, n: int) -> dict[str, float]:
        """The figures per workflow, for a scenario's extras."""
        return {"statements_per_wf": round(self.statements / n, 2),
                "round_trips_per_wf": round(self.round_trips / n, 2),
                "durable_commits_per_wf": round((self.commits + self.autocommit_writes) / n, 2)}

    def per(self, n: int) -> str:
        """One line: each figure divided by ``n`` (workflows)."""
        return (f"{self.statements / n:.2f} statements, {self.round_trips / n:.2f} round trips, "
                f"{(self.commits + self.autocommit_writes) / n:.2f} durable commits per workflow")


@contextlib.contextmanager
def counting(*, keep: bool = False) -> Iterator[Counts]:
    """Count from now on. The end of a transaction that began before (its BEGIN not counted:
    a background loop's, on its own connection) is left out, so a block counts only what
    began in it."""
    counts = Counts(sent=[] if keep else None, sent_on=[] if keep else None)
    execute, pipeline, run = TrioConnection.execute, TrioConnection.pipeline, TrioConnection.run
    begun: set[int] = set()  # the connections whose open transaction began in the block

    async def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        return await _counted(execute, self, query, *args, **kwargs)

    async def counted_run(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        return await _counted(run, self, query, *args, **kwargs)

    async def _counted(send: Any, self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = str(query) if isinstance(query, str) else query.as_string(self)
        word = text.split(None, 1)[0].upper() if text.strip() else ""
        if word == "BEGIN":
            begun.add(id(self))
        elif word in ("COMMIT", "ROLLBACK"):
            if id(self) not in begun:
                return await send(self, query, *args, **kwargs)
            begun.discard(id(self))
        counts.statements += 1
        if counts.sent is not None and counts.sent_on is not None:
            counts.sent.append((text, args[0] if args else kwargs.get("params")))
            counts.sent_on.append(id(self))
        counts.kinds[" ".join(text.split())[:70]] += 1
        in_pipeline = self._pipeline is not None
        if not in_pipeline:
            counts.round_trips += 1
        if word == "COMMIT":
            counts.commits += 1
        elif (word in _WRITES and self.autocommit and not in_pipeline
              and self.pgconn.transaction_status == 0):  # IDLE: not inside BEGIN
            counts.autocommit_writes += 1
        return await send(self, query, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def counted_pipeline(self: Any) -> Any:
        outermost = self._pipeline is None
        async with pipeline(self) as p:
            yield p
        if outermost:
            counts.round_trips += 1

    TrioConnection.execute = counted_execute  # type: ignore[method-assign]
    TrioConnection.pipeline = counted_pipeline  # type: ignore[method-assign]
    TrioConnection.run = counted_run  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        TrioConnection.execute = execute  # type: ignore[method-assign]
        TrioConnection.pipeline = pipeline  # type: ignore[method-assign]
        TrioConnection.run = run  # type: ignore[method-assign]
