"""MySQL/MariaDB URLs (no driver needed to read one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .._errors import ConfigurationError
from .._redact import redact_url


@dataclass(frozen=True, slots=True)
class MysqlParams:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # never in a log line or a traceback's locals
    database: str
    connect_timeout: float
    origin: str = ""
    """This process's mark on the signals its sessions write (``@romancy_origin``)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A URL naming the same server, login and database."""
        auth = quote(self.user, safe="") + (
            f":{quote(self.password, safe='')}" if self.password else "")
        return (f"mysql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
                f"?connect_timeout={self.connect_timeout:g}")


def parse_url(url: str) -> MysqlParams:
    """``mysql://user:password@host:port/database`` (or ``mariadb://``); ``connect_timeout``
    (seconds) as a query parameter."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        raise ConfigurationError(f"not a MySQL URL: {redact_url(url)!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigurationError(
            f"MySQL URL {redact_url(url)!r} names no database: use mysql://user:password@host:port/db")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"connect_timeout"})
    if unknown:
        raise ConfigurationError(
            f"MySQL URL {redact_url(url)!r}: unknown parameter(s) {', '.join(unknown)} "
            "(known: connect_timeout)")
    try:
        port = parts.port or 3306
        timeout = float(query.get("connect_timeout", ["10"])[-1])
    except ValueError as exc:
        raise ConfigurationError(f"MySQL URL {redact_url(url)!r}: {exc}") from None
    return MysqlParams(parts.hostname or "127.0.0.1", port, unquote(parts.username or "root"),
                       unquote(parts.password or ""), database, timeout)
