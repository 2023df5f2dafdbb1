"""Every docs example that claims PostgreSQL runs as written behind PgBouncer (issue #30), in
transaction mode and in session mode, twice in the same folder: ``ROMANCY_TRIO_URL`` goes
through a private PgBouncer (tests/pgbouncer.py) to a database made for the example,
``ROMANCY_TRIO_LISTENER_URL`` straight to the same database. Examples use no search_path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.pgbouncer import PgBouncer
from tests.test_docs_examples import RUN_HERE, Example, check_runs_twice, fresh_pg_url

__all__ = ["fresh_pg_url"]  # the fixture, used here by name

pytestmark = pytest.mark.postgres
ON_POSTGRES = [e for e in RUN_HERE if "postgres" in e.backends]


def test_the_examples_that_claim_postgres_are_many() -> None:
    assert len(ON_POSTGRES) >= 20


@pytest.mark.parametrize("mode", ["transaction", "session"])
@pytest.mark.parametrize("ex", ON_POSTGRES, ids=lambda e: e.name)
def test_docs_example_runs_behind_pgbouncer(ex: Example, mode: str, tmp_path: Path,
                                            fresh_pg_url: str,
                                            request: pytest.FixtureRequest) -> None:
    bouncer: PgBouncer = request.getfixturevalue(f"pgbouncer_{mode}")
    pooled = bouncer.url(urlsplit(fresh_pg_url).path.strip("/"))
    check_runs_twice(ex.code, tmp_path, pooled, listener_url=fresh_pg_url)
