"""Who may open a websocket: the ``Origin`` allow-list and the browser credential.

A browser cannot set ``Authorization`` on a WebSocket, so with a bearer token the feed would be
unusable from a page. Instead the page's backend (which holds the token) asks for a short-lived
*ticket* - ``POST /channels/ws/ticket`` with the bearer token - and the page offers it as a
subprotocol::

    new WebSocket(url, ["romancy.feed", "romancy.ticket." + ticket])

The server selects ``romancy.feed``. A ticket is ``v1.<expiry>.<nonce>.<HMAC-SHA256>``, signed
with a key derived from the bearer token, so every server process sharing the token accepts it,
and it stays valid until its expiry (default 60 s; it may be used more than once until then).

Browsers always send ``Origin`` on a websocket handshake (cross-site websocket hijacking is a page
of another site opening yours with the user's ambient credentials). A handshake whose ``Origin`` is
not allowed is refused (HTTP 403): by default only same-origin pages (``Origin`` host:port equal
to ``Host``) and clients that send no ``Origin`` (not browsers); ``allowed_origins=[...]`` lists
the page origins (``"https://app.example.com"``) to allow as well, ``["*"]`` allows any.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

from ._http import Message, Request, Response, Route, Scope, Send

TICKET_PATH: Final = "/channels/ws/ticket"
FEED_PROTOCOL: Final = "romancy.feed"
TICKET_PREFIX: Final = "romancy.ticket."
DEFAULT_TICKET_TTL: Final = 60.0
SESSION_COOKIE: Final = "romancy_session"
_KEY_LABEL: Final = b"romancy-trio websocket ticket v1"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


def offered_subprotocols(scope: Scope) -> list[str]:
    """The subprotocols the client offered, in its order."""
    offered = scope.get("subprotocols")
    if offered is None:
        raw = _header(scope, b"sec-websocket-protocol") or ""
        offered = [p.strip() for p in raw.split(",") if p.strip()]
    return [str(p) for p in offered]


class WebSocketGuard:
    """The Origin allow-list and the ticket signer of one ASGI app."""

    def __init__(
        self,
        token: bytes | None,
        *,
        allowed_origins: Sequence[str] | None = None,
        ticket_ttl: float = DEFAULT_TICKET_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(ticket_ttl) and ticket_ttl > 0):
            raise ValueError(f"ticket_ttl must be a number of seconds > 0, not {ticket_ttl!r}")
        if isinstance(allowed_origins, str):
            raise ValueError("allowed_origins is a list of origins, not one string")
        origins = [o.strip().rstrip("/").lower() for o in allowed_origins or ()]
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc
                                  or parts.path):
                raise ValueError(
                    f"allowed origin {origin!r} must be '*' or scheme://host[:port] "
                    "(e.g. 'https://app.example.com'), with no path")
        self.allowed_origins = frozenset(origins)
        self.ticket_ttl = ticket_ttl
        self._clock = clock
        secret = token if token is not None else secrets.token_bytes(32)
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    # -- Origin ---------------------------------------------------------------------------

    def origin_allowed(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return True  # not a browser: nothing ambient to hijack
        origin = origin.strip().rstrip("/").lower()
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        host = (_header(scope, b"host") or "").strip().lower()
        return bool(host) and urlsplit(origin).netloc == host

    # -- tickets --------------------------------------------------------------------------

    def issue(self, ttl: float | None = None) -> str:
        expiry = math.ceil(self._clock() + (self.ticket_ttl if ttl is None else ttl))
        payload = f"v1.{expiry}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(payload)}"

    def ticket_valid(self, ticket: str) -> bool:
        payload, _, signature = ticket.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
            return False
        if not signature.isascii():
            return False
        if not hmac.compare_digest(signature, self._sign(payload)):
            return False
        return self._clock() < int(parts[1])

    def has_ticket(self, scope: Scope) -> bool:
        return any(
            p.startswith(TICKET_PREFIX) and self.ticket_valid(p[len(TICKET_PREFIX):])
            for p in offered_subprotocols(scope)
        )

    def has_session(self, scope: Scope) -> bool:
        """A browser's ``romancy_session`` cookie (set by ``POST /login``) holds a valid
        ticket: what lets pages (the viewer at ``/ui``) in without ``Authorization``."""
        cookies = _header(scope, b"cookie") or ""
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and self.ticket_valid(value):
                return True
        return False

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    # -- the handshake --------------------------------------------------------------------

    def accepting(self, scope: Scope, send: Send) -> Send:
        """``send`` that selects a subprotocol in the handshake when the client offered any
        (a browser fails the connection if none of its offers is selected)."""
        offered = offered_subprotocols(scope)
        if not offered:
            return send
        chosen = FEED_PROTOCOL if FEED_PROTOCOL in offered else offered[0]

        async def send_with_protocol(message: Message) -> None:
            if message["type"] == "websocket.accept" and "subprotocol" not in message:
                message = {**message, "subprotocol": chosen}
            await send(message)

        return send_with_protocol

    # -- the HTTP route that issues tickets ---------------------------------------------

    async def ticket_handler(self, req: Request) -> Response:
        await req.body()
        ticket = self.issue()
        return Response(200, {
            "ticket": ticket,
            "expires_in": self.ticket_ttl,
            "subprotocols": [FEED_PROTOCOL, TICKET_PREFIX + ticket],
        }, (("cache-control", "no-store"),))

    def route(self) -> Route:
        """``POST /channels/ws/ticket``: behind the bearer token like every other route."""
        return Route(TICKET_PATH, {"POST": self.ticket_handler})
