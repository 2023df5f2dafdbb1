"""call_parse (pydantic, dataclass, TypedDict through each provider's structured output) and
durable_call definitions with defaults and overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
from typing_extensions import TypedDict  # pydantic wants this one before Python 3.12

from romancy_trio import WorkflowContext, WorkflowFailedError, llm, open_app, workflow

from ..conftest import Backend
from .conftest import KEYS, base_url
from .fake_provider import FakeProvider, Reply

PROVIDERS = ["openai", "openai_responses", "anthropic", "gemini"]


class City(pydantic.BaseModel):
    name: str
    population: int


@dataclass
class Point:
    x: float
    y: float


class Pair(TypedDict):
    left: str
    right: int


@workflow
async def parse_city(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    city = await llm.call_parse(ctx, "Largest city of Japan?", City, provider=provider)
    assert isinstance(city, City)
    return city.model_dump()


@workflow
async def parse_others(ctx: WorkflowContext) -> list[Any]:
    point = await llm.call_parse(ctx, "A point", Point)
    pair = await llm.call_parse(ctx, "A pair", Pair)
    assert isinstance(point, Point)
    return [point.x, point.y, pair]


def configure(app: Any, fake: FakeProvider, **extra: Any) -> None:
    llm.set_app_defaults(app, provider="openai", model="test-model", api_keys=KEYS,
                         base_urls={p: base_url(fake, p) for p in PROVIDERS}, **extra)


def schema_sent(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    if provider == "openai":
        assert body["response_format"]["type"] == "json_schema"
        return dict(body["response_format"]["json_schema"]["schema"])
    if provider == "openai_responses":
        assert body["text"]["format"]["type"] == "json_schema"
        return dict(body["text"]["format"]["schema"])
    if provider == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
        return dict(body["output_config"]["format"]["schema"])
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return dict(config["responseJsonSchema"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_valid_answer_is_a_validated_value(
        backend: Backend, fake: FakeProvider, provider: str) -> None:
    fake.script = lambda p, body: Reply(text='{"name": "Tokyo", "population": 14000000}')
    async with open_app(backend.url, config=backend.config, workflows=[parse_city]) as app:
        configure(app, fake)
        assert await app.run(parse_city, provider, timeout=30) == {
            "name": "Tokyo", "population": 14000000}
    (seen,) = fake.calls(provider)
    schema = schema_sent(provider, seen.body)
    assert schema["required"] == ["name", "population"]
    assert schema["properties"]["population"]["type"] == "integer"


async def test_an_invalid_answer_is_recorded_and_asked_again(
        backend: Backend, fake: FakeProvider) -> None:
    answers = ['{"name": "Tokyo", "population": "many"}', '{"name": "Tokyo", "population": 14}']
    fake.script = lambda p, body: Reply(text=answers.pop(0))
    async with open_app(backend.url, config=backend.config, workflows=[parse_city]) as app:
        configure(app, fake)
        iid = await app.start(parse_city, "openai")
        assert await app.result(iid, timeout=30) == {"name": "Tokyo", "population": 14}
        recorded = [e for e in await app.history(iid) if e.kind == "activity_completed"]
        assert [e.key for e in recorded] == ["llm.call:1", "llm.call:2"]
        assert "many" in recorded[0].payload["text"]
    second = json.dumps(fake.calls()[1].body)
    assert "does not match the schema" in second and "population" in second
    assert "valid integer" in second  # pydantic's words went back to the model


async def test_an_answer_that_never_validates_fails_with_the_problem(
        backend: Backend, fake: FakeProvider) -> None:
    fake.script = lambda p, body: Reply(text='{"name": "Tokyo"}')
    async with open_app(backend.url, config=backend.config, workflows=[parse_city]) as app:
        configure(app, fake)
        with pytest.raises(WorkflowFailedError) as failed:
            await app.run(parse_city, "openai", timeout=30)
    err = failed.value
    assert err.error_type == "romancy_trio.llm._types.LLMValidationError"
    assert "no answer validated as City after 3 attempts" in err.message
    assert "population" in err.message and "Field required" in err.message
    assert len(fake.calls()) == 3


async def test_dataclasses_and_typeddicts(backend: Backend, fake: FakeProvider) -> None:
    def script(provider: str, body: dict[str, Any]) -> Reply:
        schema = schema_sent(provider, body)
        return Reply(text='{"x": 1.5, "y": -2}' if "x" in schema["properties"]
                     else '{"left": "a", "right": 3}')

    fake.script = script
    async with open_app(backend.url, config=backend.config, workflows=[parse_others]) as app:
        configure(app, fake)
        assert await app.run(parse_others, timeout=30) == [1.5, -2.0, {"left": "a", "right": 3}]


@llm.durable_call(name="summarize", model="summary-model", system="You summarize.",
                  max_tokens=64)
def summarize(text: str, words: int = 10) -> str:
    return f"Summarize in {words} words: {text}"


@llm.durable_call(provider="anthropic", result_type=City)
def city_facts(country: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Largest city of {country}?"}]


@workflow
async def uses_definitions(ctx: WorkflowContext) -> list[Any]:
    a = await summarize(ctx, "a long text")
    b = await summarize.with_options(model="other-model", temperature=0.0)(ctx, "more", 3)
    city = await city_facts(ctx, "Japan")
    return [a.text, a.model, a.call_id, b.model, b.call_id, city.name]


async def test_durable_call_definitions_with_defaults_and_overrides(
        backend: Backend, fake: FakeProvider) -> None:
    def script(provider: str, body: dict[str, Any]) -> Reply:
        if provider == "anthropic":
            return Reply(text='{"name": "Tokyo", "population": 1}')
        return Reply(text="short.")

    fake.script = script
    async with open_app(backend.url, config=backend.config,
                        workflows=[uses_definitions]) as app:
        configure(app, fake, max_tokens=500)
        assert await app.run(uses_definitions, timeout=30) == [
            "short.", "summary-model", "llm.call.summarize:1", "other-model",
            "llm.call.summarize:2", "Tokyo"]
    first, second = fake.calls("openai")
    assert first.body["max_tokens"] == 64 and first.body["messages"] == [
        {"role": "system", "content": "You summarize."},
        {"role": "user", "content": "Summarize in 10 words: a long text"}]
    assert second.body["model"] == "other-model" and second.body["temperature"] == 0.0
    (third,) = fake.calls("anthropic")
    assert third.body["model"] == "test-model" and third.body["max_tokens"] == 500
