"""The schema convention of every PostgreSQL SQL module (romancy_trio's and this package's).

PostgreSQL connections carry no session state (no ``SET search_path``: a pool, or a
transaction-pooling proxy such as PgBouncer, hands them to anyone). So every library statement
names its tables, functions and sequences with the token ``{schema}.``, e.g.
``SELECT ... FROM {schema}.workflow_instances``. The module's statements are written once, as
plain strings, and `qualify` replaces the token in every statement of a queries dataclass with
the quoted schema when a store opens (cached, so once per (statements, schema)). The token is
replaced with ``str.replace``, never ``str.format``: other braces in SQL stay as they are.
SQLite modules don't use the token (one database file, one namespace).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

SCHEMA_TOKEN = "{schema}"
"""Stands for the quoted schema name in a PostgreSQL statement."""

Q = TypeVar("Q")


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier. A ``%`` or NUL is refused: statements with this name
    go through the driver's ``%`` placeholders, and PostgreSQL names can't hold NUL."""
    if not name or "\x00" in name or "%" in name:
        raise ValueError(f"schema name {name!r} must be non-empty, without '%' or NUL")
    return '"' + name.replace('"', '""') + '"'


def qualify(queries: Q, schema: str) -> Q:
    """A copy of the frozen dataclass ``queries`` with ``{schema}`` replaced by the quoted
    ``schema`` in every string field and in the strings of every tuple field."""
    return _qualify(queries, schema)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _qualify(queries: Any, schema: str) -> Any:
    quoted = quote_identifier(schema)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(SCHEMA_TOKEN, quoted)
        if isinstance(value, tuple):
            return tuple(fill(v) for v in value)
        return value

    changes = {f.name: fill(getattr(queries, f.name)) for f in dataclasses.fields(queries)}
    return dataclasses.replace(queries, **changes)
