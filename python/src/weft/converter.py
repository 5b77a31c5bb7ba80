"""JSON payloads to and from Python values.

Payloads are JSON by convention (the Rust SDK uses serde_json). A value converts from:
dataclasses (recursively, by field type), pydantic models (when pydantic is installed), lists,
tuples, dicts with string keys, ``Optional``/unions, and the JSON scalars. ``bytes`` pass through
unchanged in both directions, for activities that speak another format.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import types
import typing
from typing import Any, Union


class ConversionError(ValueError):
    """A payload does not fit the type it should become (or a value is not JSON)."""


def to_payload(value: Any) -> bytes:
    """Encodes ``value`` as the bytes of a payload."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return json.dumps(_to_json(value), separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise ConversionError(f"cannot encode {type(value).__name__} as JSON: {e}") from e


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model
        return dump(mode="json")
    if isinstance(value, enum.Enum):
        return _to_json(value.value)
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_to_json(v) for v in value]
    return value


def from_payload(data: bytes, hint: Any = Any) -> Any:
    """Decodes a payload into a value of type ``hint`` (``Any``: plain JSON values)."""
    if hint is bytes:
        return bytes(data)
    try:
        value = json.loads(data) if data else None
    except ValueError as e:
        raise ConversionError(f"the payload is not JSON: {e}") from e
    return from_json(value, hint)


def from_json(value: Any, hint: Any, path: str = "$") -> Any:
    """Converts a decoded JSON value into type ``hint``; errors name the path that failed."""
    if hint is Any or hint is object or hint is None and value is None:
        return value
    if hint is type(None):
        if value is not None:
            raise ConversionError(f"{path}: expected null, got {_kind(value)}")
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return from_json(value, typing.get_args(hint)[0], path)
    if origin is Union or origin is types.UnionType:
        errors = []
        for arm in typing.get_args(hint):
            try:
                return from_json(value, arm, path)
            except ConversionError as e:
                errors.append(str(e))
        raise ConversionError(" or ".join(errors))
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConversionError(f"{path}: {value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin in (list, typing.List, set, frozenset, tuple, collections.abc.Sequence):
        if not isinstance(value, list):
            raise ConversionError(f"{path}: expected a list, got {_kind(value)}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConversionError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(from_json(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [from_json(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if origin in (set, frozenset, tuple):
            return origin(items)
        return items
    if origin in (dict, typing.Dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise ConversionError(f"{path}: expected an object, got {_kind(value)}")
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: from_json(v, item, f"{path}.{k}") for k, v in value.items()}
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return _dataclass(value, hint, path)
        validate = getattr(hint, "model_validate", None)
        if callable(validate):  # a pydantic model
            try:
                return validate(value)
            except ValueError as e:
                raise ConversionError(f"{path}: {e}") from e
        if issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError as e:
                raise ConversionError(f"{path}: {e}") from e
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint is bool and not isinstance(value, bool):
            raise ConversionError(f"{path}: expected a boolean, got {_kind(value)}")
        if hint is int and isinstance(value, bool):
            raise ConversionError(f"{path}: expected an integer, got a boolean")
        if hint in (list, dict, str, int, float, bool):
            if not isinstance(value, hint):
                raise ConversionError(f"{path}: expected {hint.__name__}, got {_kind(value)}")
            return value
    return value


def _dataclass(value: Any, cls: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: expected an object for {cls.__name__}, got {_kind(value)}")
    hints = typing.get_type_hints(cls)
    args: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name in value:
            args[field.name] = from_json(
                value[field.name], hints.get(field.name, Any), f"{path}.{field.name}"
            )
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConversionError(f"{path}: missing field `{field.name}` of {cls.__name__}")
    return cls(**args)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)

