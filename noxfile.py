"""nox sessions: tests, lint, typecheck (``.ci/run`` runs all three), demo, loadtest."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
PACKAGES = ["romancy_trio", "notify/romancy_notify", "channels/romancy_channels"]


@nox.session
def tests(session: nox.Session) -> None:
    session.run("bash", ".ci/browser-test-deps", external=True)  # Debian's chromium
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[lint]")
    session.run("ruff", "check", *PACKAGES, "tests", "loadtests", "noxfile.py")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[typecheck]")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "-m", "romancy_trio", "demo", *session.posargs)


@nox.session
def loadtest(session: nox.Session) -> None:
    """``nox -s loadtest -- [scenario ...] [--chart run.png] ...``: see loadtests/README.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "loadtests", *session.posargs)
