"""Helpers of the LLM tests: the app's rows as text (to look for keys), waiting for states."""

from __future__ import annotations

from typing import Any

import trio

from romancy_trio import App, WorkflowStatus

from ..conftest import fetch


async def all_rows_text(app: App) -> str:
    """Every row of every table of the app's schema, as one string."""
    if app.store.db.dialect == "sqlite":
        names = [r[0] for r in await fetch(app, "SELECT name FROM sqlite_master WHERE "
                                                "type = 'table'")]
        tables = [f'"{n}"' for n in names]
    else:
        schema = app.store.db.schema  # MySQL: the URL's database
        names = [r[0] for r in await fetch(app, "SELECT table_name FROM "
                                                "information_schema.tables WHERE "
                                                "table_schema = ?", (schema,))]
        q = "`" if app.store.db.dialect == "mysql" else '"'
        tables = [f"{q}{schema}{q}.{q}{n}{q}" for n in names]
    assert len(tables) >= 5, tables
    parts = []
    for table in tables:
        parts += [repr(tuple(row)) for row in await fetch(app, f"SELECT * FROM {table}")]
    return "\n".join(parts)


async def until_status(app: App, iid: str, status: WorkflowStatus, timeout: float = 30) -> None:
    with trio.fail_after(timeout):
        while (info := await app.status(iid)).status != status:
            assert not info.status.is_terminal, info.error
            await trio.sleep(0.02)


def history_keys(events: list[Any]) -> list[str]:
    return [f"{e.kind}:{e.key}" for e in events]
