"""The web viewer, a guest built on the public facade: mount it on the HTTP app::

    from romancy_trio.asgi import create_asgi_app
    from romancy_trio.viewer import viewer_app

    asgi = create_asgi_app(app, bearer_token=token, mounts={"/ui": viewer_app(app)})

Pages (plain HTML/CSS/JS shipped in the package, no build step): the instances with filters
and live status, one instance with its timeline drawn as SVG, cancel and resume buttons, and
the channels with depth and subscribers. Live updates come over a small Server-Sent Events
stream (``/ui/api/stream``). The bearer token applies: a browser signs in at ``/login``."""

from ._app import ViewerApp as ViewerApp
from ._app import viewer_app as viewer_app

__all__ = ["ViewerApp", "viewer_app"]
