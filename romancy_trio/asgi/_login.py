"""``/login``: how a browser gets past the bearer token. A page cannot send ``Authorization``,
so a person types the token into a form once; ``POST /login`` checks it and sets the
``romancy_session`` cookie: a signed ticket (as the websocket's, see ``_ws_auth``) valid for
``session_ttl`` seconds, ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other
site's page sends it: cross-site request forgery gets nothing). The token itself is never
stored in the browser. ``GET`` of a mounted page (the viewer) without it redirects here."""

from __future__ import annotations

import hmac
import html
from typing import Final
from urllib.parse import parse_qsl, quote

from ._http import HTTPError, Request, Response, Route
from ._ws_auth import SESSION_COOKIE, WebSocketGuard

LOGIN_PATH: Final = "/login"
DEFAULT_SESSION_TTL: Final = 8 * 3600.0
_FORM = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>romancy-trio: sign in</title>
<body style="font-family:system-ui;max-width:24em;margin:4em auto">
<h1>romancy-trio</h1><p>{message}</p>
<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<label>Bearer token <input type="password" name="token" autofocus required></label>
<button type="submit">Sign in</button></form></body></html>"""


def safe_next(target: str | None, root: str) -> str:
    """Only a path on this server (no ``//host``, no scheme): never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{root}/ui/"


def login_redirect(root: str, path: str) -> Response:
    return Response(303, b"", (("location", f"{root}{LOGIN_PATH}?next={quote(path)}"),
                               ("content-type", "text/plain")))


class Login:
    def __init__(self, token: bytes | None, guard: WebSocketGuard,
                 session_ttl: float = DEFAULT_SESSION_TTL) -> None:
        self._token = token
        self._guard = guard
        self._ttl = session_ttl

    def _form(self, req: Request, status: int, message: str, target: str) -> Response:
        page = _FORM.format(message=html.escape(message), next=html.escape(target),
                            action=html.escape(f"{req.root_path()}{LOGIN_PATH}"))
        return Response(status, page.encode(), (("content-type", "text/html; charset=utf-8"),
                                                 ("cache-control", "no-store")))

    async def show(self, req: Request) -> Response:
        target = safe_next(req.query.get("next"), req.root_path())
        return self._form(req, 200, "Sign in with the server's bearer token.", target)

    async def submit(self, req: Request) -> Response:
        body = await req.body()
        try:
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))
        except (UnicodeDecodeError, ValueError):
            raise HTTPError(400, "the form is not percent-encoded UTF-8") from None
        target = safe_next(fields.get("next"), req.root_path())
        given = fields.get("token", "").encode()
        if self._token is not None and not hmac.compare_digest(given, self._token):
            return self._form(req, 401, "Wrong token: try again.", target)
        cookie = (f"{SESSION_COOKIE}={self._guard.issue(self._ttl)}; Path=/; HttpOnly; "
                  f"SameSite=Strict; Max-Age={int(self._ttl)}")
        return Response(303, b"", (("location", target), ("set-cookie", cookie),
                                   ("content-type", "text/plain")))

    def route(self) -> Route:
        return Route(LOGIN_PATH, {"GET": self.show, "POST": self.submit}, public=True)
