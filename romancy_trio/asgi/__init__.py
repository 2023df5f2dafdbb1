"""HTTP for romancy_trio: CloudEvents intake and a JSON API, as an ASGI app served by hypercorn
in Trio mode.

* ``create_asgi_app(app)`` - the ASGI callable for an App you opened; mount it anywhere.
* ``await nursery.start(serve_http, app)`` - serve it in your nursery; returns the bound port.
* ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` - a server that opens its own App
  (see :class:`LifespanApp`).
"""

from ._app import AsgiApp as AsgiApp
from ._app import create_asgi_app as create_asgi_app
from ._cloudevents import BadEvent as BadEvent
from ._cloudevents import ParsedEvent as ParsedEvent
from ._cloudevents import parse_http as parse_http
from ._http import Route as Route
from ._http import WebSocketRoute as WebSocketRoute
from ._serve import HttpTimeouts as HttpTimeouts
from ._serve import LifespanApp as LifespanApp
from ._serve import app_from_env as app_from_env
from ._serve import serve_asgi as serve_asgi
from ._serve import serve_http as serve_http

__all__ = [
    "AsgiApp",
    "BadEvent",
    "HttpTimeouts",
    "LifespanApp",
    "ParsedEvent",
    "Route",
    "WebSocketRoute",
    "app_from_env",
    "create_asgi_app",
    "make_lifespan_app",
    "parse_http",
    "serve_asgi",
    "serve_http",
]


make_lifespan_app = LifespanApp
"""``make_lifespan_app(url, *, workflows_module=...)``: same as :class:`LifespanApp`."""
