"""open_app() without a URL: ROMANCY_TRIO_URL when set, else sqlite:///romancy.db here."""

from __future__ import annotations

from pathlib import Path

import pytest

from romancy_trio import WorkflowContext, open_app, workflow

from .conftest import Backend


@workflow
async def url_default_echo(ctx: WorkflowContext, text: str) -> str:
    return text


async def test_open_app_without_a_url_uses_romancy_trio_url(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROMANCY_TRIO_URL", backend.url)
    async with open_app(workflows=[url_default_echo], config=backend.config) as app:
        iid = await app.start(url_default_echo, "from the environment")
        assert await app.result(iid, timeout=20) == "from the environment"
    async with open_app(backend.url, workflows=[url_default_echo], config=backend.config) as app:
        assert (await app.status(iid)).status == "completed"  # the same database
    assert not (tmp_path / "romancy.db").exists()


@pytest.mark.parametrize("unset", ["absent", "empty"])
async def test_open_app_without_a_url_or_variable_uses_sqlite_here(
    unset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if unset == "absent":
        monkeypatch.delenv("ROMANCY_TRIO_URL", raising=False)
    else:
        monkeypatch.setenv("ROMANCY_TRIO_URL", "")
    async with open_app(workflows=[url_default_echo]) as app:
        assert await app.run(url_default_echo, "default", timeout=20) == "default"
    assert (tmp_path / "romancy.db").exists()
