"""Mappings (parsed YAML) into typed config dataclasses, strictly: unknown keys and wrong types are ConfigErrors
naming the field (with a close match where there is one). Shared by every layer's configs and by the registered
parts' own options."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from lclab.errors import ConfigError

__all__ = ["from_dict"]


def _is_instance(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_is_instance(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "<top level>", f"expected a mapping, got {type(data).__name__}",
                          "write key: value pairs")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(names)}" if names
                    else f"remove it: {prefix.rstrip('.')} takes no fields")
            raise ConfigError(prefix + str(key), "unknown field", hint)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, f"{prefix}{key}.")
        elif (number := _as_float(value, tp)) is not None:
            kwargs[key] = number
        elif _is_instance(value, tp):
            kwargs[key] = value
        else:
            raise ConfigError(prefix + key, f"{value!r} is not {_describe(tp)}", _fix(value, tp))
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(prefix + f.name, "is required and not set", f"set it to {_describe(hints[f.name])}")
    return cls(**kwargs)


def _fix(value: Any, tp: Any) -> str:
    """The closest allowed word to a misspelt one ('bytes' -> 'byte'), else what the field takes."""
    words = [str(a) for a in typing.get_args(tp)] if typing.get_origin(tp) is Literal else []
    close = difflib.get_close_matches(str(value), words, n=1) if isinstance(value, str) else []
    return f"did you mean '{close[0]}'?" if close else f"set it to {_describe(tp)}"


def _as_float(value: Any, tp: Any) -> float | None:
    """YAML reads 1e-3 as a string (1.0e-3 as a float): accept both where a float is expected."""
    if not _is_instance(1.5, tp) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
