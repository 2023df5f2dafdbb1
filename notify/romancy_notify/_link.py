"""How soon a silently dead network link to PostgreSQL is noticed, at both ends.

A cut link (a partition, a host that vanished, a firewall dropping packets) sends no RST:
without help the kernel notices only after about 15 minutes of retransmissions (data waiting
to be acknowledged) or never (an idle connection, before the default 2 h of keepalive). So
every connection gets, unless the conninfo sets them itself:

- libpq's ``keepalives=1``, ``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``:
  an idle connection (waiting for a reply or between statements) is probed after
  ``keepalives_idle`` s of silence, then every ``keepalives_interval`` s; ``keepalives_count``
  unanswered probes end it;
- libpq's ``tcp_user_timeout`` (ms): a connection whose sent data stays unacknowledged that long
  (a statement sent into the cut) ends;
- the same values for the server's end of it (the settings ``tcp_keepalives_idle``,
  ``tcp_keepalives_interval``, ``tcp_keepalives_count`` and ``tcp_user_timeout``, set with one
  statement after connecting): a backend whose client vanished inside a transaction ends too,
  rolling it back and releasing its locks, instead of holding them for hours; and, on
  PostgreSQL 14+, ``client_connection_check_interval`` (``keepalives_interval`` s), so that a
  backend busy with a long statement for a vanished client stops as well.

A value the conninfo gives (``?keepalives_idle=30`` in a URL) wins, at both ends; a setting
named in the conninfo's ``options`` (``-c tcp_user_timeout=...``) is left to it on the server;
``keepalives=0`` turns keepalives off at both ends and ``tcp_user_timeout=0`` leaves the
kernels' default. Over a Unix socket these settings do nothing (PostgreSQL ignores them).
Behind a proxy (PgBouncer) the server side is the proxy's link, not the client's: the proxy's
own keepalive settings govern its clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict

__all__ = ["LinkTimeouts"]

_CLIENT_KEYS = ("keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout")
_SERVER_NAMES = {
    "keepalives_idle": "tcp_keepalives_idle",
    "keepalives_interval": "tcp_keepalives_interval",
    "keepalives_count": "tcp_keepalives_count",
    "tcp_user_timeout": "tcp_user_timeout",
}
_PROBES = 3


@dataclass(frozen=True, slots=True)
class LinkTimeouts:
    """Keepalive and unacknowledged-data timeouts for both ends of a connection (see the
    module docstring). Whole seconds, except ``tcp_user_timeout`` (milliseconds), as libpq
    and the kernel take them."""

    keepalives_idle: int
    keepalives_interval: int
    keepalives_count: int
    tcp_user_timeout: int

    def __post_init__(self) -> None:
        for name in _CLIENT_KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LinkTimeouts.{name} must be an int >= 1, not {value!r}")

    @classmethod
    def within(cls, seconds: float) -> LinkTimeouts:
        """Timeouts under which a dead link is noticed after about ``seconds`` (at least
        4 s: probes are whole seconds apart, and one lost probe alone never ends a link):
        ``tcp_user_timeout`` = ``seconds``; three probes ``max(1, seconds // 6)`` s apart,
        the first after the rest of ``seconds`` of silence (at least 1 s)."""
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"LinkTimeouts.within: seconds must be > 0, not {seconds!r}")
        interval = max(1, int(seconds // 6))
        idle = max(1, int(seconds) - interval * _PROBES)
        return cls(idle, interval, _PROBES, max(1000, int(seconds * 1000)))

    @property
    def window(self) -> float:
        """Seconds of silence after which an idle link is given up."""
        return float(self.keepalives_idle + self.keepalives_interval * self.keepalives_count)

    def _effective(self, given: dict[str, Any]) -> dict[str, str]:
        ours = {name: str(getattr(self, name)) for name in _CLIENT_KEYS}
        return {**ours, **{k: str(given[k]) for k in _CLIENT_KEYS if given.get(k) is not None}}

    def connect_params(self, conninfo: str, given: dict[str, Any] | None = None
                       ) -> dict[str, str]:
        """The libpq parameters to add to ``conninfo`` (and ``given``, explicit connection
        arguments): ours, for each one that neither sets."""
        already = {**conninfo_to_dict(conninfo), **(given or {})}
        added = {k: v for k, v in self._effective({}).items() if already.get(k) is None}
        if already.get("keepalives") is None:
            added["keepalives"] = "1"
        if str(already.get("keepalives", "1")) == "0":
            added = {k: v for k, v in added.items() if k == "tcp_user_timeout"}
        return added

    def server_statement(self, conninfo: str, given: dict[str, Any] | None = None
                         ) -> str | None:
        """The statement that gives the server's end of the connection the same timeouts
        (None: nothing to set), and ``client_connection_check_interval`` (PostgreSQL 14+:
        a backend busy with a long statement looks at its socket every ``keepalives_interval``
        s, so a client found dead ends the statement too). A setting the server does not know
        (an older version) is skipped. Values are integers, so the SQL is built from them."""
        params = {**conninfo_to_dict(conninfo), **(given or {})}
        effective = self._effective(params)
        effective["check"] = str(int(effective["keepalives_interval"]) * 1000)
        options = str(params.get("options") or "")
        keepalives_off = str(params.get("keepalives", "1")) == "0"
        settings = []
        for key, guc in (*_SERVER_NAMES.items(), ("check", "client_connection_check_interval")):
            if guc in options or (keepalives_off and key != "tcp_user_timeout"):
                continue
            settings.append(f"('{guc}', '{int(effective[key])}')")
        if not settings:
            return None
        return ("SELECT set_config(name, v.setting, false) FROM (VALUES "
                f"{', '.join(settings)}) v (name, setting) JOIN pg_settings USING (name)")
