"""Command line: ``python -m romancy_trio migrate URL`` and ``python -m romancy_trio demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

from ._errors import ConfigurationError, StorageUnavailableError
from .storage import open_store


async def _migrate(url: str, schema: str) -> None:
    async with open_store(url, schema=schema, migrate=True):
        pass
    print(f"migrations applied to {url}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="romancy-trio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    mig = sub.add_parser("migrate", help="apply the schema migrations to a database and exit")
    mig.add_argument("url", help="sqlite:///path.db or postgresql://user@host/db")
    mig.add_argument("--schema", default="romancy", help="PostgreSQL schema (default: romancy)")
    demo = sub.add_parser("demo", help="run the order-processing demo workflow")
    demo.add_argument("--url", default="sqlite:///romancy-demo.db")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            trio.run(_migrate, args.url, args.schema)
        else:
            from .demo import run_demo

            trio.run(run_demo, args.url)
    except ConfigurationError as exc:  # a bad URL or argument: nothing to retry
        return _error(exc, 2)
    except StorageUnavailableError as exc:  # unreachable server, unopenable file
        return _error(exc, 1)
    return 0


def _error(exc: Exception, code: int) -> int:
    """One ``error: ...`` line (driver messages span lines), no traceback."""
    print("error:", " ".join(str(exc).split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
