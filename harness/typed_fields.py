"""Typed config fields: a field's allowed range, and the loader's checks of a value against its
annotation (harness/config.py's dataclasses are built through `build`, so a YAML file, a profile and
`--set` all get the same one-line errors naming the key, what is expected and where it came from)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from typing import Any, Literal

from harness.user_input import ConfigError


def ranged(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
       hi_open: bool = False, doc: str = "", parse: Any = None) -> Any:
    """A field with an allowed range; the range is checked by the loader and in __post_init__.
    parse(value, key, source): the loader's check for a value no annotation describes."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "doc": doc,
                                            "parse": parse})


def where(source: str) -> str:
    return f" ({source})" if source else ""


# A field's scalar type -> the values it accepts, its name in messages; `true` is never a number (nor 1 a bool).
_SCALARS = {bool: (bool, "true or false"), int: (int, "an integer"), float: ((int, float), "a number"),
            str: (str, "a string")}


def coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is tuple:  # tuple[Literal[...], ...]: a non-empty subset of the names, kept in their order
        names = typing.get_args(typing.get_args(tp)[0])
        if not isinstance(value, (list, tuple)) or not value or any(v not in names or value.count(v) > 1 for v in value):
            raise ConfigError(f"{key} must be a non-empty list of distinct names of {', '.join(names)}, got {value!r}"
                              f"{where(source)}")
        return tuple(n for n in names if n in value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key} must be one of {' | '.join(map(repr, typing.get_args(tp)))}, got {value!r}{where(source)}")
        return value
    if tp in _SCALARS:
        accepts, what = _SCALARS[tp]
        if isinstance(value, bool) is not (tp is bool) or not isinstance(value, accepts):
            raise ConfigError(f"{key} must be {what}, got {value!r}{where(source)}")
        # NaN passes every range check (each comparison is False) and inf overflows what it sizes.
        if tp is float and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}{where(source)}")
        return float(value) if tp is float else value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of {tp.__name__} fields, got {value!r}{where(source)}")
        return build(tp, value, key, source)
    raise ConfigError(f"{key}: unsupported annotation {tp}")  # pragma: no cover


def check_range(cls: type, name: str, value: Any, key: str, source: str) -> None:
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None or isinstance(value, (str, bool)):
        return
    below = lo is not None and (value <= lo if meta["lo_open"] else value < lo)
    above = hi is not None and (value >= hi if meta["hi_open"] else value > hi)
    if below or above:
        if lo is not None and hi is not None:
            rng = f"in {'(' if meta['lo_open'] else '['}{lo:g}, {hi:g}{')' if meta['hi_open'] else ']'}"
        elif lo is not None:
            rng = f"{'>' if meta['lo_open'] else '>='} {lo:g}"
        else:
            rng = f"{'<' if meta['hi_open'] else '<='} {hi:g}"
        raise ConfigError(f"{key} must be {rng}, got {value!r}{where(source)}")


def build(cls: type, mapping: dict, prefix: str, source: str, finish: Any = None) -> Any:
    """`cls` from a mapping of its fields, each checked (type, range, parser); nested dataclasses
    recursively. finish(kwargs, source), if given, constructs the top-level object instead of cls."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    parsers = {f.name: f.metadata.get("parse") for f in dataclasses.fields(cls)}
    for name, value in mapping.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in names:
            raise ConfigError(f"unknown key {key}; valid keys here: {', '.join(names)}{where(source)}")
        parse = parsers[name]
        kwargs[name] = parse(value, key, source) if parse else coerce(value, hints[name], key, source)
        check_range(cls, name, kwargs[name], key, source)
    return finish(kwargs, source) if finish else cls(**kwargs)
