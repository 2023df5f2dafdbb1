"""The OpenAPI 3.1 document at ``/openapi.json`` is in step with the routes, and Schemathesis
(its CLI, a real client) fuzzes the live hypercorn server with it: no 5xx, every response
matches the document, and nothing is stored for a request that was refused."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trio

import romancy_trio as rt
from romancy_trio.asgi import AsgiApp, serve_http
from romancy_trio.asgi._openapi import DOCUMENT

TOKEN = "oapi-s3cret"


@rt.workflow
async def oapi_double(ctx: rt.WorkflowContext, x: int) -> int:
    return x * 2


def test_document_lists_exactly_the_routes_and_methods() -> None:
    routes = AsgiApp(cast(Any, None)).routes
    served = {(r.path, m.lower()) for r in routes for m in r.methods}
    documented = {(p, m) for p, ops in DOCUMENT["paths"].items() for m in ops}
    assert documented == served
    assert DOCUMENT["openapi"].startswith("3.1")
    for path, ops in DOCUMENT["paths"].items():  # every {param} in a path is declared
        for name in (s[1:-1] for s in path.split("/") if s.startswith("{")):
            for op in ops.values():
                assert any(p["name"] == name and p["in"] == "path"
                           for p in op.get("parameters", [])), (path, name)


def schemathesis_or_skip() -> str:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        message = "schemathesis missing: pip install 'romancy-trio[test]'"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return exe


async def test_schemathesis_against_the_live_server(tmp_path: Path) -> None:
    exe = schemathesis_or_skip()
    db = tmp_path / "oapi.db"
    har = tmp_path / "run.har"
    async with rt.open_app(f"sqlite:///{db}", workflows=[oapi_double]) as app:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app, bearer_token=TOKEN))
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(trust_env=False) as http:
                served = (await http.get(f"{base}/openapi.json")).json()
            assert served == json.loads(json.dumps(DOCUMENT))
            # the served document, but naming this app's workflow (and one it lacks) so that
            # some generated starts are accepted
            spec = tmp_path / "openapi.json"
            start = served["paths"]["/workflows/{name}"]["post"]
            start["parameters"][0]["schema"] = {"enum": ["oapi_double", "oapi_missing"]}
            body = start["requestBody"]["content"]["application/json"]["schema"]
            body["properties"]["input"] = {"type": "integer"}
            spec.write_text(json.dumps(served))
            run = await trio.run_process(
                [exe, "run", str(spec), "--url", base, "-H", f"Authorization: Bearer {TOKEN}",
                 "--checks", "not_a_server_error,response_schema_conformance,"
                 "content_type_conformance", "--max-examples", "15", "--seed", "24",
                 "--phases", "examples,coverage,fuzzing", "--request-timeout", "30",
                 "--report", "har", "--report-har-path", str(har), "--no-color"],
                capture_stdout=True, capture_stderr=True, check=False,
                env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
            nursery.cancel_scope.cancel()
    output = run.stdout.decode() + run.stderr.decode()
    assert run.returncode == 0, output[-6000:]
    entries = json.loads(har.read_text())["log"]["entries"]
    assert len(entries) > 100, len(entries)  # it did fuzz
    started, received = set(), set()
    for entry in entries:
        request, response = entry["request"], entry["response"]
        path = request["url"].split(str(port), 1)[1].split("?")[0]
        if request["method"] == "POST" and 200 <= response["status"] < 300:
            body = json.loads(response["content"].get("text") or "null")
            if path.startswith("/workflows/"):
                started.add(body["instance_id"])
            elif path in ("/", "/events") and isinstance(body, dict):
                for receipt in body.get("receipts", [body]):
                    received.add((receipt["source"], receipt["id"]))
    with sqlite3.connect(db) as conn:
        instances = {r[0] for r in conn.execute("SELECT instance_id FROM workflow_instances")}
        events = set(conn.execute("SELECT source, event_id FROM workflow_events"))
    print(f"{len(entries)} requests; {len(started)} instances, {len(received)} events stored")
    assert started and received  # some requests were accepted, so the comparison means something
    assert instances == started  # only what was answered 2xx was stored
    assert events == received
