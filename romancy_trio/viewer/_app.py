"""The viewer's ASGI app: static pages and a small JSON API under its mount point."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import trio

import romancy_trio as rt

from ..cli import details, summary

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_STATIC: Final = {"index.html": "text/html", "viewer.js": "text/javascript",
                  "viewer.css": "text/css"}
LIST_LIMIT: Final = 500
_ERRORS: Final[dict[type[Exception], int]] = {
    rt.InstanceNotFoundError: 404, rt.InstanceFinishedError: 409, rt.InvalidInputError: 400,
}


class _Answer(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ViewerApp:
    """ASGI app of the viewer for one open :class:`~romancy_trio.App`. ``stream_interval``:
    seconds between the stream's looks at the instances (it sends only changes)."""

    def __init__(self, app: rt.App, *, stream_interval: float = 0.5) -> None:
        if not 0 < stream_interval < float("inf"):
            raise ValueError("stream_interval must be a number of seconds > 0")
        self.app = app
        self.stream_interval = stream_interval

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        root = str(scope.get("root_path", "")).rstrip("/")
        path = str(scope.get("path", ""))
        rel = path[len(root):] if path.startswith(root) else path
        method = scope["method"]
        try:
            if rel == "":
                await _send(send, 308, b"", "text/plain", (("location", f"{root}/"),))
            elif rel == "/api/stream" and method == "GET":
                await self._stream(receive, send)
            elif rel.startswith("/api/"):
                await _send_json(send, 200, await self._api(method, rel[5:], scope))
            elif method == "GET" and (rel.lstrip("/") or "index.html") in _STATIC:
                name = rel.lstrip("/") or "index.html"
                body = resources.files(__package__).joinpath("static", name).read_bytes()
                await _send(send, 200, body, _STATIC[name], (("cache-control", "no-cache"),))
            else:
                raise _Answer(404, f"no page {rel!r}")
        except _Answer as exc:
            await _send_json(send, exc.status, {"error": str(exc)})

    async def _api(self, method: str, rel: str, scope: Scope) -> Any:
        parts = [unquote(p) for p in rel.split("/")]
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
        try:
            if parts == ["instances"] and method == "GET":
                return {"instances": await self._list(query)}
            if len(parts) == 2 and parts[0] == "instances" and method == "GET":
                return await details(self.app, parts[1])
            if len(parts) == 3 and parts[0] == "instances" and method == "POST":
                if parts[2] == "cancel":
                    await self.app.cancel(parts[1])
                    return {"instance_id": parts[1], "cancel_requested": True}
                if parts[2] == "resume":
                    return {"instance_id": parts[1],
                            "resumed_at": await self.app.resume(parts[1])}
            if parts == ["channels"] and method == "GET":
                backlog = await self.app.backlog()
                subscribers = await self.app.subscribers()
                names = sorted(set(backlog.channels) | set(subscribers))
                return {"runnable": backlog.runnable, "waiting": backlog.waiting,
                        "channels": [{"channel": n, "depth": backlog.channels.get(n, 0),
                                      "subscribers": subscribers.get(n, [])} for n in names]}
        except tuple(_ERRORS) as exc:
            raise _Answer(_ERRORS[type(exc)], str(exc)) from None
        raise _Answer(404 if method == "GET" else 405, f"no API {method} {rel!r}")

    async def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status") or None
        if status is not None and status not in {s.value for s in rt.WorkflowStatus}:
            raise _Answer(400, f"status must be one of {[s.value for s in rt.WorkflowStatus]}")
        search = query.get("search") or ""
        infos = await self.app.list_instances(status=status,
                                              workflow=query.get("workflow") or None,
                                              limit=LIST_LIMIT)
        return [summary(i) for i in infos if search in i.instance_id]

    async def _stream(self, receive: Receive, send: Send) -> None:
        """Server-Sent Events: ``{"instances": [...]}`` with every instance whose status or
        update time changed since the last look (all of them first), until the page leaves."""
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]})
        seen: dict[str, tuple[str, str]] = {}

        async def watch(cancel: trio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            while True:
                changed = []
                for info in await self.app.list_instances(limit=LIST_LIMIT):
                    row = summary(info)
                    mark = (row["status"], row["updated_at"])
                    if seen.get(info.instance_id) != mark:
                        seen[info.instance_id] = mark
                        changed.append(row)
                frame = json.dumps({"instances": changed}) if changed else ""
                await send({"type": "http.response.body", "more_body": True,
                            "body": f"data: {frame}\n\n".encode() if frame else b": idle\n\n"})
                await trio.sleep(self.stream_interval)


def viewer_app(app: rt.App, *, stream_interval: float = 0.5) -> ViewerApp:
    """The viewer for ``app``, to mount (``mounts={"/ui": viewer_app(app)}``)."""
    return ViewerApp(app, stream_interval=stream_interval)


async def _send(send: Send, status: int, body: bytes, kind: str,
                headers: tuple[tuple[str, str], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode("latin-1")) for k, v in headers)]})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, value: Any) -> None:
    await _send(send, status, json.dumps(value, default=str).encode(), "application/json")
