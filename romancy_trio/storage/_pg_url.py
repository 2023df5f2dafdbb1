"""PostgreSQL URLs, single- and multi-host: checked before anything connects, and named in
errors as the servers they list.

A multi-host URL (``postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write``) lists
a primary and its standbys; libpq (and our Trio adapter, attempt by attempt) tries the hosts in
turn and keeps the first connection that satisfies ``target_session_attrs``. romancy_trio
writes on every connection it opens (the pool, the worker's session, the LISTEN connection:
LISTEN is refused during recovery too), so only ``read-write`` and ``primary`` make sense, and
with several hosts one of them is required: without it a connection could land on a standby
(or on a failed primary that came back as one).
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .._errors import ConfigurationError
from .._redact import redact_url

__all__ = ["check_postgres_url", "connect_timeout", "server_address", "server_addresses"]

_WRITABLE = ("read-write", "primary")
_KNOWN_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
_DEFAULT_HOST = "localhost (Unix socket)"


def _split(value: object) -> list[str]:
    return [] if value is None else [part.strip() for part in str(value).split(",")]


def server_addresses(conninfo: str) -> list[str]:
    """``host:port`` of each server a DSN or URL lists, in libpq's order (defaults filled);
    raises `psycopg.ProgrammingError` if it cannot be parsed."""
    params = conninfo_to_dict(conninfo)
    hosts = _split(params.get("host")) or _split(params.get("hostaddr")) or [""]
    ports = _split(params.get("port")) or [""]
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [f"{host or _DEFAULT_HOST}:{port or 5432}"
            for host, port in zip(hosts, ports, strict=False)]


def connect_timeout(conninfo: str, default: float) -> float | None:
    """The timeout of each connection attempt: ``default``, unless the URL sets
    ``connect_timeout`` (None: libpq's rules then apply to it). Per host of a multi-host URL,
    so a short one keeps a primary that vanished without a TCP reset (a dead machine) from
    delaying every new connection by ``default`` before the next host is tried."""
    return None if "connect_timeout" in conninfo_to_dict(conninfo) else default


def server_address(conninfo: str) -> str:
    """The servers a DSN or URL names, for messages: ``host:port``, or ``h1:p1, h2:p2`` for a
    multi-host URL."""
    try:
        return ", ".join(server_addresses(conninfo))
    except psycopg.ProgrammingError:
        return "an unparsable address"


def check_postgres_url(url: str, what: str = "database URL") -> None:
    """Raise `ConfigurationError` naming the problem if ``url`` cannot work for romancy_trio:
    unparsable, a port that is not a number, host and port lists that do not pair up, an empty
    host in a list, a ``target_session_attrs`` that allows a read-only server, or several
    hosts without one that requires the primary."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigurationError(f"{what} {redact_url(url)!r} cannot be parsed: {detail}") from None
    shown = redact_url(url)
    hosts, ports = _split(params.get("host")), _split(params.get("port"))
    addrs = _split(params.get("hostaddr"))
    count = max(len(hosts), len(addrs), 1)
    for name, values in (("port", ports), ("hostaddr", addrs), ("host", hosts)):
        if len(values) not in (0, 1, count):
            raise ConfigurationError(
                f"{what} {shown!r} lists {len(hosts)} host(s) but {len(values)} {name} values: "
                f"give one {name} for every host (postgresql://h1:5432,h2:5432/db), or one for "
                "all of them")
    if count > 1 and any(not h for h in hosts or addrs):
        raise ConfigurationError(
            f"{what} {shown!r} has an empty entry in its host list: write each host, "
            "e.g. postgresql://h1:5432,h2:5432/db")
    for port in ports:
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(
                f"{what} {shown!r}: port {port!r} is not a port number (1-65535)")
    attrs = str(params.get("target_session_attrs") or "").strip()
    if attrs and attrs not in _KNOWN_ATTRS:
        raise ConfigurationError(
            f"{what} {shown!r}: target_session_attrs={attrs!r} is not one of "
            f"{', '.join(_KNOWN_ATTRS)}")
    if attrs and attrs not in ("any", *_WRITABLE):
        raise ConfigurationError(
            f"{what} {shown!r}: target_session_attrs={attrs} would connect to a read-only "
            "server, but romancy_trio writes on every connection; use "
            "target_session_attrs=read-write (or primary)")
    if count > 1 and attrs not in _WRITABLE:
        raise ConfigurationError(
            f"{what} {shown!r} lists {count} hosts but "
            f"{'no target_session_attrs' if not attrs else 'target_session_attrs=' + attrs}: "
            "add ?target_session_attrs=read-write (or primary), so that every connection goes "
            "to the primary and, after a failover, to the promoted standby")
