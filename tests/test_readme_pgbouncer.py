"""Every runnable Python example in the README runs as written behind PgBouncer (issue #30),
in transaction mode and in session mode, twice in the same folder: ``ROMANCY_TRIO_URL`` goes
through a private PgBouncer (tests/pgbouncer.py) to a database made for the example,
``ROMANCY_TRIO_LISTENER_URL`` straight to the same database. Examples use no search_path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.pgbouncer import PgBouncer
from tests.test_readme import RUNNABLE, example_id, fresh_pg_url, run_example

__all__ = ["fresh_pg_url"]  # the fixture, used here by name

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("mode", ["transaction", "session"])
@pytest.mark.parametrize("code", RUNNABLE, ids=example_id)
def test_readme_example_runs_behind_pgbouncer(code: str, mode: str, tmp_path: Path,
                                              fresh_pg_url: str,
                                              request: pytest.FixtureRequest) -> None:
    bouncer: PgBouncer = request.getfixturevalue(f"pgbouncer_{mode}")
    pooled = bouncer.url(urlsplit(fresh_pg_url).path.strip("/"))
    for run in ("first", "second"):
        done = run_example(code, tmp_path, pooled, listener_url=fresh_pg_url)
        assert done.returncode == 0, f"{run} run:\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), "an example should show what it did"
