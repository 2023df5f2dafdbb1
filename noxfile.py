"""nox sessions: tests, lint, typecheck, tests-pgbouncer, docs (``.ci/run`` runs these five),
demo, loadtest."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "docs", "tests", "tests-pgbouncer"]
nox.options.reuse_existing_virtualenvs = True
PACKAGES = ["romancy_trio", "notify/romancy_notify", "channels/romancy_channels"]


@nox.session
def tests(session: nox.Session) -> None:
    session.run("bash", ".ci/install-partition-deps", external=True)  # iproute2 (netns tests)
    session.run("bash", ".ci/browser-test-deps", external=True)  # Debian's chromium
    session.install("-e", ".[test]")
    session.run("bash", ".ci/pgbouncer.sh", external=True)  # PgBouncer for its tests
    session.run("pytest", *session.posargs)


@nox.session(name="tests-pgbouncer")
def tests_pgbouncer(session: nox.Session) -> None:
    """The runtime's PostgreSQL tests with every app's pool through a PgBouncer in transaction
    mode (``ROMANCY_TEST_PGBOUNCER``, see tests/romancy_trio/conftest.py); LISTEN and the
    worker session go straight to the server. The PgBouncer tests of their own ran in
    ``tests`` (both modes), so they are left out here."""
    session.install("-e", ".[test]")
    session.run("bash", ".ci/pgbouncer.sh", external=True)
    args = session.posargs or ["tests/romancy_trio", "-k", "not sqlite and not mysql",
                               "--deselect", "tests/romancy_trio/test_pgbouncer.py"]
    session.run("pytest", *args, env={"ROMANCY_TEST_PGBOUNCER": "transaction"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[lint]")
    session.run("ruff", "check", *PACKAGES, "tests", "loadtests", "docs/examples", "noxfile.py")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[typecheck]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, ``mkdocs build --strict`` into ``site/``: a broken link, a missing
    snippet file or an API reference that does not resolve fails it. (Its examples are run by
    tests/test_docs_examples.py in ``tests``.)"""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs,
                env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "-m", "romancy_trio", "demo", *session.posargs)


@nox.session
def loadtest(session: nox.Session) -> None:
    """``nox -s loadtest -- [scenario ...] [--chart run.png] ...``: see loadtests/README.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "loadtests", *session.posargs)
