"""Command line: ``python -m romancy_trio migrate URL``, ``demo``, ``serve``, ``mcp``, and the
operator's commands of :mod:`romancy_trio.cli` (``list``, ``show``, ``cancel``, ...)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import trio

from ._config import AppConfig
from ._errors import ConfigurationError, RomancyError, StorageUnavailableError
from ._redact import redact_url
from .storage import open_store


async def _migrate(url: str, schema: str) -> None:
    # a dead link fails it after about a lease, not after the kernel's many minutes
    async with open_store(url, schema=schema, migrate=True,
                          link=AppConfig(schema=schema).link_timeouts()):
        pass
    print(f"migrations applied to {redact_url(url)}")


class _DidNotStart(Exception):
    pass


async def _serve(bind: str, mcp_path: str | None = None) -> None:
    """hypercorn's Trio server in this process, on the app ``app_from_env()`` describes, with
    MCP (streamable HTTP) mounted at ``mcp_path`` if given.

    Unlike ``hypercorn -k trio`` (whose parent process exits 0 when its worker process fails,
    in hypercorn 0.18), a failed start is this process's own error; SIGINT and SIGTERM shut
    down gracefully (lifespan shutdown closes the App)."""
    from hypercorn.trio import serve

    from .asgi import app_from_env
    from .asgi._serve import server_config

    open_mounts = None
    if mcp_path is not None:
        if not mcp_path.startswith("/") or mcp_path.endswith("/") or "?" in mcp_path:
            raise ConfigurationError(f"--mcp {mcp_path!r}: give a path such as /mcp")
        try:
            from .mcp import http_mounts
        except ImportError as exc:
            raise ConfigurationError(f"--mcp needs the mcp extra: pip install "
                                     f"'romancy-trio[mcp]' ({exc})") from None
        open_mounts = http_mounts(mcp_path, host=bind.rpartition(":")[0],
                                  bearer_token=os.environ.get("ROMANCY_TRIO_TOKEN") or None)
    app = app_from_env(open_mounts)
    config = server_config(bind)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def stop() -> None:
            async for _ in signals:
                return

        try:
            await serve(cast(Any, app), config, shutdown_trigger=stop, mode="asgi")
        except Exception as exc:
            if app.startup_error is None:
                raise
            error = app.startup_error
            raise _DidNotStart(f"the app did not start: {type(error).__name__}: {error}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="romancy-trio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    mig = sub.add_parser("migrate", help="apply the schema migrations to a database and exit")
    mig.add_argument("url", help="sqlite:///path.db, postgresql://user@host/db or mysql://user:pw@host/db")
    mig.add_argument("--schema", default="romancy", help="PostgreSQL schema (default: romancy)")
    demo = sub.add_parser("demo", help="run the order-processing demo workflow")
    demo.add_argument("--url", default="sqlite:///romancy-demo.db")
    demo.add_argument("--schema", default="romancy", help="PostgreSQL schema (default: romancy)")
    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API with hypercorn (Trio) in this process; the app is configured "
        "by the ROMANCY_TRIO_* variables of romancy_trio.asgi.app_from_env",
    )
    serve.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT (default: %(default)s)")
    serve.add_argument("--mcp", nargs="?", const="/mcp", metavar="PATH",
                       help="also serve the workflows as MCP tools (streamable HTTP) at PATH "
                       "(default: /mcp), behind $ROMANCY_TRIO_TOKEN like the rest; needs "
                       "romancy-trio[mcp]")
    mcp = sub.add_parser(
        "mcp",
        help="serve the workflows as MCP tools: over stdio (default), or with --bind over HTTP "
        "(the whole HTTP API, MCP at /mcp); needs romancy-trio[mcp]",
    )
    mcp.add_argument("--url", help="database URL (default: $ROMANCY_TRIO_URL, else "
                     "sqlite:///romancy.db)")
    mcp.add_argument("--workflows", action="append", default=[], metavar="MODULE",
                     help="module whose @workflow functions to serve (repeatable)")
    mcp.add_argument("--schema", default="romancy", help="PostgreSQL schema (default: romancy)")
    mcp.add_argument("--bind", help="HOST:PORT: serve streamable HTTP instead of stdio")
    mcp.add_argument("--token", default=os.environ.get("ROMANCY_TRIO_TOKEN"),
                     help="bearer token for HTTP (default: $ROMANCY_TRIO_TOKEN)")
    from .cli import COMMANDS

    for name, (text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=text))
    args = parser.parse_args(argv)
    try:
        if args.command in COMMANDS:
            return int(trio.run(COMMANDS[args.command][2], args))
        if args.command == "migrate":
            trio.run(_migrate, args.url, args.schema)
        elif args.command == "serve":
            trio.run(_serve, args.bind, args.mcp)
        elif args.command == "mcp":
            return _mcp(args)
        else:
            from .demo import run_demo

            trio.run(partial(run_demo, schema=args.schema), args.url)
    except ConfigurationError as exc:  # a bad URL or argument: nothing to retry
        return _error(exc, 2)
    except StorageUnavailableError as exc:  # unreachable server, unopenable file
        return _error(exc, 1)
    except _DidNotStart as exc:  # lifespan startup failed: nothing was served
        return _error(exc, 3)
    except RomancyError as exc:  # e.g. no such instance, already ended, invalid event
        return _error(exc, 1)
    return 0


def _mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp import run
    except ImportError as exc:
        raise ConfigurationError(f"MCP needs the mcp extra: pip install 'romancy-trio[mcp]' "
                                 f"({exc})") from None
    from ._config import AppConfig

    config = AppConfig(schema=args.schema)
    try:
        trio.run(partial(run, args.url, args.workflows, bind=args.bind,
                         bearer_token=args.token or None, config=config))
    except KeyboardInterrupt:
        return 130
    return 0


def _error(exc: Exception, code: int) -> int:
    """One ``error: ...`` line (driver messages span lines), no traceback."""
    print("error:", " ".join(str(exc).split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
