"""The OpenAPI 3.1 description of the JSON API, served at ``GET /openapi.json``.

One entry per route of ``ROUTES`` (and the ticket, login and this document's own routes);
``tests/romancy_trio/test_openapi.py`` compares them, and runs Schemathesis against a live
server with this document. Mounted apps (``/ui``, ``/mcp``) describe themselves, or not."""

from __future__ import annotations

from typing import Any, Final

from ._http import Request, Response, Route

OPENAPI_PATH: Final = "/openapi.json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "invalid request", 401: "missing or wrong bearer token", 404: "not found",
            405: "method not allowed", 408: "timed out", 409: "conflict",
            413: "body too large", 415: "unsupported content type",
            503: "database unavailable (retryable)"}
    return {str(c): _json(_ERROR, text[c]) for c in (*codes, 401, 503)}


_RECEIPT = {"type": "object", "required": ["id", "source", "duplicate", "delivered_to"],
            "properties": {"id": {"type": "string"}, "source": {"type": "string"},
                           "duplicate": {"type": "boolean"},
                           "delivered_to": {"type": "array", "items": {"type": "string"}}}}
_BATCH = {"type": "object", "required": ["receipts"],
          "properties": {"receipts": {"type": "array", "items": _RECEIPT}}}
_ANY_EVENT = {"oneOf": [{"type": "object"}, {"type": "array"}]}

DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {"title": "romancy_trio HTTP API", "version": "1",
             "description": "Start workflows, send CloudEvents, read and cancel instances. "
             "With a bearer token every path but /healthz, /login and /openapi.json needs "
             "'Authorization: Bearer <token>' (or the /login session cookie)."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "WorkflowError": {"type": ["object", "null"],
                              "required": ["type", "message"],
                              "properties": {"type": {"type": "string"},
                                             "message": {"type": "string"},
                                             "activity_id": {"type": ["string", "null"]},
                                             "activity_name": {"type": ["string", "null"]},
                                             "attempts": {"type": ["integer", "null"]}}},
            "Instance": {"type": "object",
                         "required": ["instance_id", "workflow", "status", "input", "result",
                                      "error", "run_no", "created_at", "updated_at"],
                         "properties": {
                             "instance_id": {"type": "string"}, "workflow": {"type": "string"},
                             "status": {"enum": ["pending", "running", "waiting", "completed",
                                                 "failed", "cancelled"]},
                             "input": {}, "result": {},
                             "error": {"$ref": "#/components/schemas/WorkflowError"},
                             "run_no": {"type": "integer"},
                             "created_at": {"type": "string", "format": "date-time"},
                             "updated_at": {"type": "string", "format": "date-time"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/": {"post": {
            "summary": "CloudEvents HTTP binding: binary, structured or batched mode",
            "requestBody": {"content": {"application/cloudevents+json": {"schema": _ANY_EVENT},
                                        "application/cloudevents-batch+json": {
                                            "schema": {"type": "array"}},
                                        "application/json": {"schema": {}}}},
            "responses": {"202": _json({"oneOf": [_RECEIPT, _BATCH]}, "stored"),
                          **_errors(400, 404, 405, 408, 413, 415)}}},
        "/events": {"post": {
            "summary": "an event as a plain JSON object",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["type", "source", "id"],
                "properties": {"type": {"type": "string", "minLength": 1},
                               "source": {"type": "string", "minLength": 1},
                               "id": {"type": "string", "minLength": 1}, "data": {},
                               "subject": {"type": "string"},
                               "instance_id": {"type": "string"}},
                "additionalProperties": False}}}},
            "responses": {"202": _json(_RECEIPT, "stored"), **_errors(400, 404, 405, 408, 413)}}},
        "/healthz": {"get": {"security": [], "responses": {"200": _json(
            {"type": "object", "properties": {"status": {"const": "ok"}}}, "alive")}}},
        "/workflows/{name}": {"post": {
            "summary": "start an instance",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"input": {}, "instance_id": {"type": "string"}},
                "additionalProperties": False}}}},
            "responses": {"202": _json({"type": "object", "required": ["instance_id"],
                                        "properties": {"instance_id": {"type": "string"}}},
                                       "started (or already started with this input)"),
                          **_errors(400, 404, 405, 408, 409, 413)}}},
        "/instances": {"get": {
            "parameters": [
                {"name": "status", "in": "query", "schema": {
                    "enum": ["pending", "running", "waiting", "completed", "failed",
                             "cancelled"]}},
                {"name": "workflow", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _json({"type": "object", "required": ["instances"],
                                        "properties": {"instances": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Instance"}}}},
                                       "newest first"),
                          **_errors(400, 405)}}},
        "/instances/{id}": {"get": {
            "parameters": [_ID],
            "responses": {"200": _json({"$ref": "#/components/schemas/Instance"}, "the instance"),
                          **_errors(400, 404, 405)}}},
        "/instances/{id}/result": {"get": {
            "summary": "wait up to `timeout` seconds for the result",
            "parameters": [_ID, {"name": "timeout", "in": "query",
                                 "schema": {"type": "number", "minimum": 0, "maximum": 60}}],
            "responses": {"200": _json({"type": "object",
                                        "required": ["instance_id", "status", "result"],
                                        "properties": {"instance_id": {"type": "string"},
                                                       "status": {"const": "completed"},
                                                       "result": {}}}, "completed"),
                          **_errors(400, 404, 405, 408, 409)}}},
        "/instances/{id}/cancel": {"post": {
            "parameters": [_ID],
            "responses": {"202": _json({"type": "object",
                                        "required": ["instance_id", "cancel_requested"],
                                        "properties": {"instance_id": {"type": "string"},
                                                       "cancel_requested": {"const": True}}},
                                       "cancel requested"),
                          **_errors(400, 404, 405, 409)}}},
        "/channels/ws/ticket": {"post": {
            "summary": "a short-lived ticket for a browser websocket on /channels/ws",
            "responses": {"200": _json({"type": "object",
                                        "required": ["ticket", "expires_in", "subprotocols"],
                                        "properties": {"ticket": {"type": "string"},
                                                       "expires_in": {"type": "number"},
                                                       "subprotocols": {"type": "array"}}},
                                       "a ticket"), **_errors(400, 405, 408, 413)}}},
        "/login": {
            "get": {"security": [], "summary": "the browser sign-in form",
                    "parameters": [{"name": "next", "in": "query",
                                    "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "an HTML form",
                                          "content": {"text/html": {"schema": {
                                              "type": "string"}}}},
                                  **_errors(400, 405)}},
            "post": {"security": [], "summary": "check the token; set the session cookie",
                     "requestBody": {"content": {"application/x-www-form-urlencoded": {
                         "schema": {"type": "object",
                                    "properties": {"token": {"type": "string"},
                                                   "next": {"type": "string"}}}}}},
                     "responses": {"303": {"description": "signed in: to `next`"},
                                   "401": {"description": "wrong token: the form again",
                                           "content": {"text/html": {"schema": {
                                               "type": "string"}}}},
                                   **{k: v for k, v in _errors(400, 405, 408, 413).items()
                                      if k != "401"}}}},
        OPENAPI_PATH: {"get": {"security": [], "responses": {"200": _json(
            {"type": "object"}, "this document")}}},
    },
}


async def openapi(req: Request) -> Response:
    return Response(200, DOCUMENT)


def openapi_route() -> Route:
    return Route(OPENAPI_PATH, {"GET": openapi}, public=True)
