"""Every dialect gets its own child/schedule/queue statements, with its namespace filled in;
an unknown dialect is refused by name instead of silently getting another dialect's SQL."""

from __future__ import annotations

import dataclasses

import pytest

from romancy_trio.storage._compose_queries import compose_queries, queue_queries


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "mysql"])
def test_each_dialect_fills_every_statement(dialect: str) -> None:
    for queries in (compose_queries(dialect, "app_ns"), queue_queries(dialect, "app_ns")):
        for field in dataclasses.fields(queries):
            sql = getattr(queries, field.name)
            assert "{schema}" not in sql, (dialect, field.name)
            if dialect == "sqlite":
                assert ":" in sql or "%(" not in sql, (dialect, field.name)
            else:
                assert "app_ns" in sql, (dialect, field.name)
                assert ":iid" not in sql, (dialect, field.name)


def test_mysql_gets_mysql_sql() -> None:
    q, qq = compose_queries("mysql", "app_ns"), queue_queries("mysql", "app_ns")
    assert "`app_ns`.workflow_instances" in q.child_insert
    assert "ON CONFLICT" not in q.child_insert and "ON DUPLICATE KEY" in q.child_insert
    assert "RETURNING" not in q.schedule_delete + q.schedule_pause + qq.queued_insert
    assert "FILTER" not in qq.depth


def test_unknown_dialect_is_named() -> None:
    with pytest.raises(ValueError, match=r"'oracle'.*known: mysql, postgres, sqlite"):
        compose_queries("oracle", "x")
    with pytest.raises(ValueError, match="'oracle'"):
        queue_queries("oracle", "x")
