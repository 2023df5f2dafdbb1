"""Tests of romancy_trio.testing run on Trio with a MockClock that autojumps (virtual time)."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": trio.testing.MockClock()}
