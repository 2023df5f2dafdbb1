"""Fixtures for runtime tests: one database URL + config per backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from romancy_trio import AppConfig


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    config: AppConfig

    def ph(self) -> str:
        """The placeholder style of this backend's driver."""
        return "%s" if self.name == "postgres" else "?"


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    fast = dict(lease_ttl=2.0, heartbeat_interval=0.5, fallback_interval=5.0)
    if name == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'wf.db'}", AppConfig(**fast))
    dsn: str = request.getfixturevalue("pg_dsn")
    schema: str = request.getfixturevalue("pg_schema")
    return Backend("postgres", dsn, AppConfig(schema=schema, **fast))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend("postgres", request, tmp_path)
