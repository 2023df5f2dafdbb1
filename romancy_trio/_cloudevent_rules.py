"""CloudEvents 1.0 attribute rules, in one place for intake (HTTP), ``send_event`` and the outbox.

A CloudEvents *String* holds no control characters (C0, DEL, C1), surrogates or noncharacters;
extension attribute names are 1-20 lowercase ASCII letters or digits and not a core attribute;
integer extension values are 32-bit.
"""

from __future__ import annotations

import re
from typing import Final

EXTENSION_NAME: Final = re.compile(r"[a-z0-9]{1,20}")
FORBIDDEN_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
RESERVED: Final = frozenset(
    "id source specversion type datacontenttype dataschema subject time data data_base64".split()
)
INT32: Final = range(-(2**31), 2**31)


def forbidden_char(value: str) -> str | None:
    """``U+XXXX`` of the first character a CloudEvents String may not hold, or None."""
    bad = FORBIDDEN_CHARS.search(value)
    return None if bad is None else f"U+{ord(bad.group()):04X}"


def is_extension_name(name: object) -> bool:
    return isinstance(name, str) and bool(EXTENSION_NAME.fullmatch(name)) and name not in RESERVED
