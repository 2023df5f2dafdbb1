"""Tool schemas from annotations (no I/O), and the pinned surface of romancy_trio.mcp."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import jsonschema
from pydantic import BaseModel

import romancy_trio.mcp
from romancy_trio import WorkflowContext, workflow
from romancy_trio.mcp import _schemas


class Address(TypedDict):
    street: str
    zip: str


class Customer(BaseModel):
    name: str
    vip: bool = False


@workflow(name="mcp_schema_probe")
async def probe(ctx: WorkflowContext, customer: Customer, /, address: Address,
                tags: list[str] | None = None, mode: Literal["fast", "slow"] = "fast",
                anything=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {}


def test_start_schema_covers_pydantic_typeddict_optional_literal_and_untyped() -> None:
    schema = _schemas.start_input(probe)
    props = schema["properties"]
    assert schema["required"] == ["customer", "address"]
    assert schema["additionalProperties"] is False
    assert set(props) == {"customer", "address", "tags", "mode", "anything", "instance_id"}
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert props["anything"] == {}  # no annotation: any value
    validator = jsonschema.Draft202012Validator(schema)
    good = {"customer": {"name": "Ann"}, "address": {"street": "Main", "zip": "1"},
            "tags": None, "mode": "slow", "anything": [1]}
    assert not list(validator.iter_errors(good))
    bad = {**good, "address": {"street": "Main"}, "mode": "medium"}
    errors = {e.json_path for e in validator.iter_errors(bad)}
    assert errors == {"$.address", "$.mode"}


def test_result_schema_wraps_the_result_type_in_an_object() -> None:
    schema = _schemas.result_output(probe)
    assert schema["type"] == "object"
    assert schema["properties"]["result"]["additionalProperties"] == {"type": "integer"}
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(
        {"instance_id": "i", "status": "completed", "done": True, "result": {"a": 1}}))
    assert not list(validator.iter_errors({"instance_id": "i", "status": "running",
                                           "done": False}))
    assert list(validator.iter_errors({"instance_id": "i", "status": "done", "done": True}))


def test_an_annotation_pydantic_cannot_describe_is_any() -> None:
    class Opaque:
        pass

    assert _schemas.type_schema(Opaque, {}) == {}
    assert _schemas.type_schema(Any, {}) == {}


def test_public_surface() -> None:
    assert set(romancy_trio.mcp.__all__) == {"McpServer", "TASKS_EXTENSION", "http_mounts",
                                            "parse_line", "run"}
