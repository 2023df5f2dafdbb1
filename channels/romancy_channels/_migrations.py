"""The engine's numbered SQL migrations, shipped as package data (dbmate style files)."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")
_UP = "-- migrate:up"
_DOWN = "-- migrate:down"


def migrations(dialect: str) -> list[tuple[str, str]]:
    """``(version, up_sql)`` for every migration of ``dialect``, in version order.

    ``dialect`` is ``"postgres"``, ``"sqlite"`` or ``"mysql"``. The up SQL holds several
    statements separated by ``;`` (no ``;`` inside literals or comments).
    The caller applies them and records the versions; the versions are numbered for this
    package alone, so a runner that also applies other migrations must keep them apart.
    """
    if dialect not in ("postgres", "sqlite", "mysql"):
        raise ValueError(f"channels has no migrations for dialect {dialect!r}")
    # resources.files("romancy_channels") rather than importing romancy_channels.migrations:
    # that folder is data, and importing it would shadow this function's name on the package.
    folder = resources.files("romancy_channels").joinpath("migrations", dialect)
    found: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        if _UP not in text:
            raise ValueError(f"migration {entry.name} has no {_UP!r} section")
        up = text.split(_UP, 1)[1].split(_DOWN, 1)[0].strip()
        found.append((int(match.group(1)), match.group(1), up))
    return [(version, up) for _, version, up in sorted(found)]
