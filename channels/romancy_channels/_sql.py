"""The schema convention of every PostgreSQL SQL module (romancy_trio's and this package's).

PostgreSQL connections carry no session state (no ``SET search_path``: a pool, or a
transaction-pooling proxy such as PgBouncer, hands them to anyone; the user's own statements
must resolve in the user's own search_path). So:

- Every library statement names its tables and functions with the token ``{schema}.``, e.g.
  ``SELECT ... FROM {schema}.workflow_instances`` (inside an f-string: ``{{schema}}.``, which
  the f-string turns into the token). `qualify` replaces the token in every statement of a
  queries dataclass with the quoted schema when a store opens (cached: once per statements
  and schema). It uses ``str.replace``, never ``str.format``, so other braces stay as they are.
- Migrations are written unqualified: the runner applies them after
  ``SET LOCAL search_path TO <schema>`` in their own transaction.
- A function created by a migration carries ``SET search_path FROM CURRENT`` (pinned to its
  schema when created), so it never depends on its caller's search_path.
- SQLite modules don't use the token (one database file, one namespace).

tests/romancy_trio/test_schema_qualified.py checks every statement of every dataclass in the
PostgreSQL SQL modules against the tables and functions the migrations create.
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


def quote_mysql_identifier(name: str) -> str:
    """``name`` as a MySQL identifier in backquotes (a database name: 1-64 characters, no
    backquote, ``%`` or NUL)."""
    if not name or len(name) > 64 or "`" in name or "%" in name or "\x00" in name:
        raise ValueError(f"MySQL database name {name!r}: 1-64 characters, no '`', '%' or NUL")
    return f"`{name}`"


_QUOTERS = {"postgres": quote_identifier, "sqlite": quote_identifier,
            "mysql": quote_mysql_identifier}


def quote_schema(schema: str, dialect: str) -> str:
    """``schema`` quoted the way ``dialect`` (postgres, sqlite or mysql) quotes a name."""
    try:
        quote = _QUOTERS[dialect]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {dialect!r}: one of {sorted(_QUOTERS)}") from None
    return quote(schema)


def qualify(queries: Q, schema: str, *, dialect: str = "postgres") -> Q:
    """A copy of the frozen dataclass ``queries`` with ``{schema}`` replaced by the quoted
    ``schema`` (``dialect``'s quoting: postgres or mysql) in every string field and in the
    strings of every tuple field."""
    return _qualify(queries, schema, dialect)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _qualify(queries: Any, schema: str, dialect: str) -> Any:
    quoted = quote_schema(schema, dialect)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(SCHEMA_TOKEN, quoted)
        if isinstance(value, tuple):
            return tuple(fill(v) for v in value)
        return value

    changes = {f.name: fill(getattr(queries, f.name)) for f in dataclasses.fields(queries)}
    return dataclasses.replace(queries, **changes)
