"""The fake provider, served by hypercorn on 127.0.0.1 for each test that asks for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from .fake_provider import FakeProvider

KEYS = {"openai": "sk-test-OPENAI-secret-0123456789",
        "openai_responses": "sk-test-RESPONSES-secret-0123456789",
        "anthropic": "sk-ant-test-ANTHROPIC-secret-0123456789",
        "gemini": "AIza-test-GEMINI-secret-0123456789"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    async with trio.open_nursery() as nursery:
        provider.port = await nursery.start(provider.serve)
        yield provider
        nursery.cancel_scope.cancel()


def base_url(fake: FakeProvider, provider: str) -> str:
    return {"openai": f"{fake.url}/v1", "openai_responses": f"{fake.url}/v1",
            "anthropic": fake.url, "gemini": fake.url}[provider]
