"""Workflows and activities with several parameters: passed by App.start/run and the HTTP API,
stored by name, checked against their annotations before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from romancy_trio import (
    ActivityContext,
    ConfigurationError,
    InvalidInputError,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)

from .conftest import Backend
from .test_http import served


@dataclass
class Item:
    sku: str
    qty: int


@activity(transactional=False)
def price(ctx: ActivityContext, item: Item, unit: float, *, discount: float = 0.0) -> float:
    return item.qty * unit * (1 - discount)


@workflow
async def quote(ctx: WorkflowContext, item: Item, unit: float = 2.0, *,
                discount: bool = False) -> dict[str, Any]:
    total = await price(ctx, item, unit, discount=0.5 if discount else 0.0)
    return {"sku": item.sku, "total": total}


@workflow
async def bad_call(ctx: WorkflowContext, how: str) -> str:
    try:
        if how == "type":
            await price(ctx, Item("x", 1), "three")  # type: ignore[arg-type]
        else:
            await price(ctx, Item("x", 1))  # type: ignore[call-arg]
    except InvalidInputError as exc:
        return str(exc)
    return "no error"


@workflow
async def single(ctx: WorkflowContext, item: Item) -> int:
    return item.qty


WFS = [quote, bad_call, single]


async def test_several_parameters_are_passed_stored_by_name_and_checked(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        assert await app.run(quote, Item("a", 3), timeout=20) == {"sku": "a", "total": 6.0}
        iid = await app.start(quote, Item("b", 2), 5, discount=True, instance_id="q-b")
        assert await app.result(iid, timeout=20) == {"sku": "b", "total": 5.0}
        info = await app.status(iid)
        assert info.input == {"item": {"sku": "b", "qty": 2}, "unit": 5, "discount": True}
        with pytest.raises(InvalidInputError, match="parameter 'unit': expected float"):
            await app.start(quote, Item("c", 1), "cheap", instance_id="q-c")
        with pytest.raises(InvalidInputError, match="unexpected keyword argument 'colour'"):
            await app.start(quote, Item("c", 1), colour="red", instance_id="q-c")
        with pytest.raises(InvalidInputError, match="missing a required argument: 'item'"):
            await app.start(quote, instance_id="q-c")
        assert [i.instance_id for i in await app.list_instances()
                if i.instance_id == "q-c"] == []  # nothing was written


async def test_a_single_parameter_is_stored_as_before(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(single, Item("s", 4))
        assert await app.result(iid, timeout=20) == 4
        assert (await app.status(iid)).input == {"sku": "s", "qty": 4}
        assert await app.run(single, {"sku": "t", "qty": 7}, timeout=20) == 7
        assert await app.run(single, input={"sku": "k", "qty": 1}, timeout=20) == 1


async def test_activity_arguments_are_checked_in_the_workflow_at_the_call(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        wrong_type = await app.run(bad_call, "type", timeout=20)
        assert wrong_type == ("activity 'price', parameter 'unit': expected float, "
                              "got str 'three'")
        assert await app.run(bad_call, "missing", timeout=20) == (
            "activity 'price': missing a required argument: 'unit'")


async def test_http_input_of_a_workflow_with_several_parameters_is_an_object(
    backend: Backend,
) -> None:
    async with served(backend, workflows=WFS) as (app, client):
        r = await client.post("/workflows/quote", json={
            "input": {"item": {"sku": "h", "qty": 1}, "discount": True}})
        assert r.status_code == 202, r.text
        assert await app.result(r.json()["instance_id"], timeout=20) == {"sku": "h",
                                                                          "total": 1.0}
        bad = await client.post("/workflows/quote", json={"input": [{"sku": "h", "qty": 1}]})
        assert bad.status_code == 400 and "JSON object by name" in bad.text
        unknown = await client.post("/workflows/quote", json={"input": {"itemz": 1}})
        assert unknown.status_code == 400 and "unknown parameter(s) ['itemz']" in unknown.text


def test_reserved_and_variadic_parameter_names_are_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match="parameter name 'timeout' is reserved"):

        @workflow
        async def waits(ctx: WorkflowContext, item: str, timeout: float) -> None: ...

    with pytest.raises(ConfigurationError, match="parameter name 'instance_id' is reserved"):

        @workflow
        async def named(ctx: WorkflowContext, instance_id: str) -> None: ...

    with pytest.raises(ConfigurationError, match="parameter 'rest' is variadic"):

        @workflow
        async def variadic(ctx: WorkflowContext, *rest: int) -> None: ...
