"""Portable placeholders for user SQL: ``?`` (positional) and ``:name`` (named), on every dialect.

Sans-IO, pure functions. `translate` turns a statement written in the portable style into the
driver's own style for one dialect and checks the parameters against it, so the same activity
code runs on SQLite and PostgreSQL and makes the same mistakes fail with the same error.

A dialect is two small tables: its `Lexis` (what the scanner must step over: string literals,
quoted identifiers, comments, dollar quoting) and its `Style` (what a placeholder becomes, and
whether a literal ``%`` must be doubled). Adding a dialect (MySQL: ``%s`` / ``%(name)s``,
backslash escapes in '...' and "..." literals, backtick identifiers, ``#`` comments) is one
entry in `DIALECTS`.

Scanning ignores ``?`` and ``:`` inside '...' literals ('' escapes), E'...' literals (backslash
escapes), "..." identifiers, ``--`` and ``/* */`` comments (nested on PostgreSQL) and
``$tag$...$tag$`` bodies; ``::`` (a cast) and ``:=`` are not placeholders. A statement without
placeholders is sent exactly as written (no ``%`` doubling), with no parameters.

PostgreSQL's jsonb operators ``?``, ``?|`` and ``?&`` read as placeholders here: use the
functions ``jsonb_exists(doc, key)``, ``jsonb_exists_any(doc, keys)`` and
``jsonb_exists_all(doc, keys)``, or the session's ``native`` (driver style) handle.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidInputError

CACHE_SIZE = 1024
"""Statements whose scan is remembered (per dialect): activities repeat the same few."""


class PlaceholderError(InvalidInputError, ValueError):
    """A statement's placeholders and its parameters do not fit together (mixed styles, a
    missing name, a wrong count, a mapping with ``?``...). The activity's code is at fault;
    retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Lexis:
    """What a dialect's scanner steps over."""

    identifier_quotes: str = '"'
    """Characters that open a quoted identifier closed by the same character."""
    nested_comments: bool = False
    e_strings: bool = False
    """E'...' literals, where a backslash escapes the next character."""
    dollar_quotes: bool = False
    backslash_strings: bool = False
    """A backslash escapes the next character in every '...' literal (MySQL's default)."""
    hash_comments: bool = False


@dataclass(frozen=True, slots=True)
class Style:
    """What the driver expects."""

    positional: str
    named: str
    """A format with one ``{}`` for the name."""
    doubles_percent: bool


@dataclass(frozen=True, slots=True)
class Dialect:
    lexis: Lexis
    style: Style


DIALECTS: Mapping[str, Dialect] = {
    "sqlite": Dialect(Lexis(identifier_quotes='"`['), Style("?", ":{}", doubles_percent=False)),
    "postgres": Dialect(
        Lexis(nested_comments=True, e_strings=True, dollar_quotes=True),
        Style("%s", "%({})s", doubles_percent=True),
    ),
    "mysql": Dialect(
        Lexis(identifier_quotes='`"', backslash_strings=True, hash_comments=True),
        Style("%s", "%({})s", doubles_percent=True),
    ),
}


@dataclass(frozen=True, slots=True)
class Scanned:
    """A statement in the driver's style, and what its parameters must be."""

    text: str
    positional: int
    """How many ``?`` (0 for a statement with named placeholders or none)."""
    names: tuple[str, ...]
    """The distinct ``:name`` placeholders, in order of first use."""


def translate(query: str, params: Sequence[Any] | Mapping[str, Any] | None, dialect: str
              ) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    """``query`` (portable style) and ``params`` as the ``dialect``'s driver takes them.

    Raises `PlaceholderError` when they don't fit, and ``ValueError`` for an unknown dialect.
    A statement without placeholders comes back unchanged, with no parameters."""
    scanned = scan(query, dialect)
    given = params if params is not None else ()
    if isinstance(given, (str, bytes)):
        raise PlaceholderError(
            f"parameters must be a sequence or a mapping, not {type(given).__name__}: "
            f"wrap a single value as (value,)")
    if scanned.names:
        if not isinstance(given, Mapping):
            raise PlaceholderError(
                f"the statement uses named placeholders ({_listed(scanned.names)}): "
                f"pass a mapping, not a {type(given).__name__}")
        missing = [name for name in scanned.names if name not in given]
        if missing:
            raise PlaceholderError(f"no value for placeholder(s) {_listed(missing)}")
        return scanned.text, given
    if isinstance(given, Mapping):
        if scanned.positional:
            raise PlaceholderError(
                "a mapping was given but the statement uses '?': name the placeholders "
                "(:name) or pass a sequence")
        if given:
            raise PlaceholderError(
                f"the statement has no placeholders but values for {_listed(list(given))} "
                "were given")
        return query, ()
    if len(given) != scanned.positional:
        raise PlaceholderError(
            f"the statement has {scanned.positional} '?' placeholder(s) but {len(given)} "
            "value(s) were given")
    return (scanned.text, given) if scanned.positional else (query, ())


def scan(query: str, dialect: str) -> Scanned:
    """The statement in ``dialect``'s style (cached per statement)."""
    try:
        spec = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"no placeholder translation for dialect {dialect!r} "
                         f"(known: {', '.join(sorted(DIALECTS))})") from None
    return _scan(query, spec)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _scan(query: str, spec: Dialect) -> Scanned:
    lexis, style = spec.lexis, spec.style
    out: list[str] = []
    names: list[str] = []
    positional = 0
    named_uses = 0
    i, n = 0, len(query)
    start = 0  # the start of the text not yet copied to out

    def flush(upto: int) -> None:
        chunk = query[start:upto]
        out.append(chunk.replace("%", "%%") if style.doubles_percent else chunk)

    while i < n:
        c = query[i]
        if c == "'":
            escapes = lexis.backslash_strings or (
                lexis.e_strings and i > 0 and query[i - 1] in "eE"
                and (i < 2 or not _word_char(query[i - 2])))
            i = _skip_quoted(query, i, "'", backslash=escapes)
        elif c in lexis.identifier_quotes:
            i = _skip_quoted(query, i, "]" if c == "[" else c, backslash=False)
        elif (c == "-" and query.startswith("--", i)) or (c == "#" and lexis.hash_comments):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "/" and query.startswith("/*", i):
            i = _skip_block_comment(query, i, nested=lexis.nested_comments)
        elif c == "$" and lexis.dollar_quotes and (i == 0 or not _word_char(query[i - 1])):
            i = _skip_dollar(query, i)
        elif c == "?":
            flush(i)
            out.append(style.positional)
            positional += 1
            i += 1
            start = i
        elif c == ":":
            if query.startswith("::", i):
                i += 2
                continue
            j = i + 1
            if j < n and (query[j].isalpha() or query[j] == "_") and (
                    i == 0 or query[i - 1] != ":"):
                while j < n and _word_char(query[j]):
                    j += 1
                name = query[i + 1:j]
                flush(i)
                out.append(style.named.format(name))
                named_uses += 1
                if name not in names:
                    names.append(name)
                start = j
            i = j
        else:
            i += 1
    if positional and named_uses:
        raise PlaceholderError(
            f"the statement mixes '?' and named placeholders ({_listed(names)}): use one style")
    if not positional and not named_uses:
        return Scanned(query, 0, ())
    flush(n)
    return Scanned("".join(out), positional, tuple(names))


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _skip_quoted(query: str, i: int, close: str, *, backslash: bool) -> int:
    """Past the literal or identifier opening at ``i`` (a doubled ``close`` is an escape)."""
    j, n = i + 1, len(query)
    while j < n:
        c = query[j]
        if backslash and c == "\\":
            j += 2
        elif c == close:
            if j + 1 < n and query[j + 1] == close:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return n  # unterminated: the database reports it


def _skip_block_comment(query: str, i: int, *, nested: bool) -> int:
    depth, j, n = 1, i + 2, len(query)
    while j < n and depth:
        if query.startswith("*/", j):
            depth -= 1
            j += 2
        elif nested and query.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return j


def _skip_dollar(query: str, i: int) -> int:
    """Past a ``$tag$ ... $tag$`` body opening at ``i``; one step if ``$`` opens none
    (``$1``, a native positional parameter)."""
    j, n = i + 1, len(query)
    while j < n and (_word_char(query[j])) and not (j == i + 1 and query[j].isdigit()):
        j += 1
    if j >= n or query[j] != "$":
        return i + 1
    tag = query[i:j + 1]
    end = query.find(tag, j + 1)
    return n if end < 0 else end + len(tag)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(f":{name}" for name in names)
