"""A URL as it may be shown: printed, logged or put in an error message, never its password."""

from __future__ import annotations

import re

MASK = "***"
_MASKED = r"\g<1>" + MASK

# a password given as a parameter: ?password=... in a URL, password=... in a libpq conninfo
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_CONNINFO_PASSWORD = re.compile(r"""(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)""")


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: the one in its user info
    (``scheme://user:***@host/...``), a ``password=`` query parameter, or - for a libpq
    key/value conninfo (``host=h password=x``) - its ``password`` value. Everything else is
    kept, so the host, port, user and database it names can still be read."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _CONNINFO_PASSWORD.sub(_MASKED, url)
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:{MASK}@{hosts}"
    return f"{scheme}://{authority}{_QUERY_PASSWORD.sub(_MASKED, tail)}"
