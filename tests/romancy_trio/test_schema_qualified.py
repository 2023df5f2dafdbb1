"""Every PostgreSQL statement of the library names its schema (``{schema}.table``), so pooled
connections need no search_path. A new statement that forgets the token fails here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

import romancy_channels
from romancy_channels import qualify
from romancy_channels import sql_postgres as channels_sql
from romancy_trio.asgi import _websocket_tail
from romancy_trio.outbox import sql_postgres as outbox_sql
from romancy_trio.storage import sql_postgres as storage_sql


def _created(kind: str) -> set[str]:
    """Names the PostgreSQL migrations create (``kind``: TABLE or FUNCTION)."""
    texts = [m.read_text() for m in resources.files("romancy_trio.storage").joinpath(
        "migrations", "postgres").iterdir() if m.name.endswith(".sql")]
    texts += [up for _, up in romancy_channels.migrations("postgres")]
    pattern = re.compile(rf"CREATE (?:OR REPLACE )?{kind} (?:IF NOT EXISTS )?(\w+)", re.I)
    return {name for text in texts for name in pattern.findall(text)}


TABLES = _created("TABLE")
FUNCTIONS = _created("FUNCTION")


def _statements() -> Iterator[tuple[str, str]]:
    for module in (storage_sql, outbox_sql, channels_sql):
        for value in vars(module).values():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                for field in dataclasses.fields(value):
                    text: Any = getattr(value, field.name)
                    for i, item in enumerate(text if isinstance(text, tuple) else (text,)):
                        if isinstance(item, str):
                            yield f"{module.__name__}.{field.name}[{i}]", item
    yield "websocket head", _websocket_tail._HEAD_SQL["postgres"]


def test_the_migrations_name_the_tables_and_functions() -> None:
    assert {"workflow_instances", "outbox_events", "channel_messages"} <= TABLES
    assert "romancy_fenced_out" in FUNCTIONS


@pytest.mark.parametrize(("where", "statement"), list(_statements()))
def test_every_table_and_function_is_qualified(where: str, statement: str) -> None:
    tables = "|".join(sorted(TABLES, key=len, reverse=True))
    bare = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE|USING|TABLE)\s+(?!\{{schema\}}\.)({tables})\b",
                      re.I)
    assert not bare.findall(statement), f"{where}: unqualified table"
    for function in FUNCTIONS:
        for match in re.finditer(rf"\b{function}\(", statement):
            assert statement[:match.start()].endswith("{schema}."), f"{where}: {function}"


def test_qualify_quotes_the_schema_once_per_statement_set() -> None:
    q = qualify(storage_sql.QUERIES, 'we"ird')
    assert '"we""ird".workflow_instances' in q.select_instance
    assert "{schema}" not in q.claim
    assert qualify(storage_sql.QUERIES, 'we"ird') is q  # cached
    with pytest.raises(ValueError, match="without '%'"):
        qualify(storage_sql.QUERIES, "a%b")
