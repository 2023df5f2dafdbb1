"""``ctx.db``: the activity's transaction, with the same placeholders on every dialect."""

from __future__ import annotations

from typing import Protocol

from ._db import NativeSession, Params, Row, Tx
from ._placeholders import translate


class LazyTransaction(NativeSession, Protocol):
    """A session whose transaction begins at its first statement; ``tx()`` begins it (once)."""

    async def tx(self) -> Tx: ...


class PortableSession:
    """Runs user SQL written with ``?`` / ``:name`` in ``native``'s transaction, translated to
    the driver's style. The library's own code reaches the transaction through ``tx()`` (driver
    style), never through the portable methods."""

    def __init__(self, native: LazyTransaction) -> None:
        self.native: NativeSession = native
        self.dialect = native.dialect
        self._lazy = native

    async def tx(self) -> Tx:
        """The transaction itself (begun now if it has not been): for library code."""
        return await self._lazy.tx()

    async def execute(self, query: str, params: Params = ()) -> int:
        return await self.native.execute(*translate(query, params, self.dialect))

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        return await self.native.fetchone(*translate(query, params, self.dialect))

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return await self.native.fetchall(*translate(query, params, self.dialect))

    def __repr__(self) -> str:
        return f"<PortableSession dialect={self.dialect!r}>"
