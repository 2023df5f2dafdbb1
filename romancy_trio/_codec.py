"""JSON encoding of workflow inputs, activity results and errors, and conversion to declared types.

Values go to JSON with orjson (dataclasses natively, pydantic models through
``model_dump``), and come back through :func:`convert`, which rebuilds the type named by an
annotation: dataclasses, TypedDict, pydantic models (if installed), ``list``/``tuple``/``dict``,
``Optional``/unions, ``Literal`` and JSON scalars. Errors name the path of the offending
value. Pure code: no I/O.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import orjson

from ._errors import InvalidInputError

_OPTIONS = orjson.OPT_NON_STR_KEYS
_PLAIN = (str, int, float, bool)  # a value of exactly the hinted one of these is itself


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__qualname__} as JSON")


def dumps(value: Any) -> str:
    """Encode to a JSON string. Raises :class:`InvalidInputError` naming the unencodable type."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError as exc:
        raise InvalidInputError(f"value is not JSON-serialisable: {exc}") from None


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"stored value is not valid JSON: {exc}") from None


def _is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and callable(getattr(tp, "model_validate", None))


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _fail(path: str, expected: str, value: Any) -> InvalidInputError:
    return InvalidInputError(
        f"{path}: expected {expected}, got {type(value).__name__} {value!r:.80}"
    )


def convert(value: Any, hint: Any, path: str = "value") -> Any:
    """Rebuild ``value`` (decoded JSON) as ``hint``; raise InvalidInputError on a mismatch."""
    if type(value) is hint and hint in _PLAIN:  # the common case, at no cost
        return value
    if hint is Any or hint is object or (hint is None and value is None):
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _fail(path, "null", value)
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return convert(value, typing.get_args(hint)[0], path)
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(value, typing.get_args(hint), path)
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise _fail(path, f"one of {typing.get_args(hint)!r}", value)
    if origin in (list, typing.Sequence, set, frozenset):
        if not isinstance(value, list):
            raise _fail(path, "a JSON array", value)
        (item,) = typing.get_args(hint) or (Any,)
        items = [convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return origin(items) if origin in (set, frozenset) else items
    if origin is tuple:
        return _convert_tuple(value, typing.get_args(hint), path)
    if origin in (dict, typing.Mapping):
        if not isinstance(value, dict):
            raise _fail(path, "a JSON object", value)
        _, vt = typing.get_args(hint) or (str, Any)
        return {k: convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if isinstance(hint, type):
        return _convert_class(value, hint, path)
    return value  # an annotation we do not interpret (TypeVar, string forward ref...): leave as is


def _convert_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return convert(value, arg, path)
        except InvalidInputError as exc:
            errors.append(str(exc))
    raise InvalidInputError(f"{path}: matches none of the union's types ({'; '.join(errors)})")


def _convert_tuple(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if not isinstance(value, list):
        raise _fail(path, "a JSON array", value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if args and len(args) != len(value):
        raise _fail(path, f"an array of {len(args)} items", value)
    return tuple(
        convert(v, t, f"{path}[{i}]") for i, (v, t) in enumerate(zip(value, args, strict=True))
    )


def _convert_class(value: Any, cls: type, path: str) -> Any:
    if _is_pydantic_model(cls):
        try:
            return cls.model_validate(value)  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
            raise InvalidInputError(f"{path}: {exc}") from None
    if dataclasses.is_dataclass(cls):
        return _convert_dataclass(value, cls, path)
    if _is_typeddict(cls):
        return _convert_typeddict(value, cls, path)
    if cls is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if cls in (int, float) and isinstance(value, bool):
        raise _fail(path, cls.__name__, value)
    if cls in (str, int, float, bool, list, dict):
        if isinstance(value, cls):
            return value
        raise _fail(path, cls.__name__, value)
    if isinstance(value, cls):
        return value
    raise _fail(path, cls.__qualname__, value)


def _convert_dataclass(value: Any, cls: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(path, f"a JSON object for {cls.__qualname__}", value)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name in value:
            kwargs[field.name] = convert(
                value[field.name], hints.get(field.name, Any), f"{path}.{field.name}"
            )
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InvalidInputError(f"{path}: missing field {field.name!r} of {cls.__qualname__}")
    unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InvalidInputError(
            f"{path}: unknown field(s) {sorted(unknown)} for {cls.__qualname__}"
        )
    return cls(**kwargs)


def _convert_typeddict(value: Any, cls: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(path, f"a JSON object for {cls.__qualname__}", value)
    hints = typing.get_type_hints(cls)
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    missing = required - set(value)
    if missing:
        raise InvalidInputError(f"{path}: missing key(s) {sorted(missing)} of {cls.__qualname__}")
    return {k: convert(v, hints.get(k, Any), f"{path}.{k}") for k, v in value.items()}


def normalize(value: Any, hint: Any, path: str = "input") -> tuple[str, Any]:
    """Encode ``value`` and check it decodes as ``hint``: returns (json text, rebuilt value)."""
    text = dumps(value)
    return text, convert(loads(text), hint, path)
