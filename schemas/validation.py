"""Compile an Avro record schema into a fast validator that returns a normalized copy.

The codec validates every record on the hot path, so each schema is compiled once into a tree of small
closures instead of being interpreted per call. A checker takes a value and returns the normalized value
(ints in double fields become floats, numpy scalars become Python ones, defaults are filled) or raises
:class:`Invalid` with the path below it; the caller prefixes topic, record and field.
"""

from __future__ import annotations

import base64
import binascii
import copy
import numbers
from collections.abc import Callable, Mapping
from math import isfinite
from typing import Any

__all__ = ["Checker", "Invalid", "RecordValidator", "compile_finite_check", "compile_record"]

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

Checker = Callable[[Any], Any]


class Invalid(Exception):
    """A value does not fit its schema; ``path`` is the part below the field, e.g. ``['x']``."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__


def _bad(expected: str, value: Any) -> Invalid:
    return Invalid(f"expected {expected}, got {_type_name(value)} {_show(value)}")


def _non_finite(value: float) -> Invalid:
    return Invalid(f"{'NaN' if value != value else _show(value)} is not allowed (doubles must be finite)")


def _to_long(value: Any, lo: int = LONG_MIN, hi: int = LONG_MAX, name: str = "long") -> int:
    # bool is an int subclass in Python; accepting it would silently turn True into 1.
    if type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        value = int(value)
        if lo <= value <= hi:
            return value
        raise Invalid(f"{value} is out of range for {name}")
    raise _bad(name, value)


def _to_double(value: Any) -> float:
    if type(value) is float:
        if isfinite(value):
            return value
        raise _non_finite(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            out = float(value)
        except OverflowError:
            raise Invalid(f"{_show(value)} is too large for double") from None
        if isfinite(out):
            return out
        raise _non_finite(out)
    raise _bad("double", value)


def _check_string(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    raise _bad("string", value)


def _is_numpy_bool(value: Any) -> bool:
    # numpy.bool_ (named "bool" since numpy 2) is not a bool subclass but is what pandas hands out;
    # checked by name so this module does not import numpy.
    t = type(value)
    return t.__module__ == "numpy" and t.__name__ in ("bool_", "bool")


def _check_boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    if _is_numpy_bool(value):
        return bool(value)
    raise _bad("boolean", value)


def _check_null(value: Any) -> None:
    if value is None:
        return None
    raise _bad("null", value)


def _make_bytes(from_json: bool) -> Checker:
    def check(value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if from_json and isinstance(value, str):
            # JSON has no bytes; driftline's JSON form carries them as base64.
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise Invalid(f"expected base64 bytes, got {_show(value)}") from None
        raise _bad("bytes", value)

    return check


_PRIMITIVE_NAMES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


def _type_key(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _compile_union(branches: list[Any], from_json: bool) -> Checker:
    kinds = [_type_key(b) for b in branches]
    unsupported = [k for k in kinds if k not in _PRIMITIVE_NAMES and k != "map"]
    if unsupported:
        raise TypeError(f"union branches {unsupported} are not supported by the validator")
    checkers = {k: _compile(b, from_json) for k, b in zip(kinds, branches, strict=True)}
    expected = " | ".join(kinds)
    has = checkers.__contains__
    # Pick the branch from the Python type, the way fastavro's writer will, so validation and encoding agree.
    long_check = checkers.get("long") or checkers.get("int")
    double_check = checkers.get("double") or checkers.get("float")

    def check(value: Any) -> Any:
        t = type(value)
        if value is None:
            if has("null"):
                return None
        elif t is str:
            if has("string"):
                return value
            if from_json and has("bytes"):
                return checkers["bytes"](value)
        elif t is float:
            if double_check is not None:
                if isfinite(value):
                    return value
                raise _non_finite(value)
        elif t is bool:
            if has("boolean"):
                return value
        elif t is int:
            if long_check is not None:
                return long_check(value)
            if double_check is not None:
                return double_check(value)
        elif isinstance(value, Mapping):
            if has("map"):
                return checkers["map"](value)
        elif isinstance(value, bytes | bytearray | memoryview):
            if has("bytes"):
                return checkers["bytes"](value)
        elif _is_numpy_bool(value) and has("boolean"):
            return bool(value)
        elif isinstance(value, numbers.Integral) and long_check is not None:
            return long_check(value)
        elif isinstance(value, numbers.Real) and double_check is not None:
            return double_check(value)
        elif isinstance(value, str) and has("string"):
            return str(value)
        raise _bad(expected, value)

    return check


def _compile_map(values_schema: Any, from_json: bool) -> Checker:
    value_check = _compile(values_schema, from_json)
    branches = values_schema if isinstance(values_schema, list) else [values_schema]
    kinds = {_type_key(b) for b in branches}
    # Python types that need no conversion, only (for floats) a finiteness check.
    as_is: set[type] = set()
    if kinds & {"double", "float"}:
        as_is.add(float)
    if "string" in kinds:
        as_is.add(str)
    if "boolean" in kinds:
        as_is.add(bool)
    if "null" in kinds:
        as_is.add(type(None))
    fast = frozenset(as_is)
    doubles = float in fast
    shapes: dict[int, tuple[tuple[type, ...], tuple[type, ...]]] = {}

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _bad("map (object)", value)
        out = dict(value)
        if doubles and out:
            # Whole-map check in C for the common all-double map; the sum is finite only if every value is.
            n = len(out)
            shape = shapes.get(n)
            if shape is None:
                shape = shapes.setdefault(n, ((str,) * n, (float,) * n))
            if tuple(map(type, out)) == shape[0] and tuple(map(type, out.values())) == shape[1]:
                total = sum(out.values())
                if total - total == 0.0:
                    return out
        for k, v in out.items():
            if type(k) is not str:
                raise Invalid(f"map keys must be strings, got {_type_name(k)} {_show(k)}", f"[{k!r}]")
            t = type(v)
            if t in fast:
                if t is not float or isfinite(v):
                    continue
                raise Invalid(_non_finite(v).message, f"[{k!r}]")
            try:
                out[k] = value_check(v)
            except Invalid as exc:
                raise Invalid(exc.message, f"[{k!r}]{exc.path}") from None
        return out

    return check


def _compile(schema: Any, from_json: bool) -> Checker:
    kind = _type_key(schema)
    if kind == "union":
        return _compile_union(schema, from_json)
    if kind == "map":
        return _compile_map(schema["values"], from_json)
    if kind == "string":
        return _check_string
    if kind in ("long", "int"):
        lo, hi = (LONG_MIN, LONG_MAX) if kind == "long" else (INT_MIN, INT_MAX)

        def check_long(value: Any) -> int:
            if type(value) is int and lo <= value <= hi:
                return value
            return _to_long(value, lo, hi, kind)

        return check_long
    if kind in ("double", "float"):
        return _to_double
    if kind == "boolean":
        return _check_boolean
    if kind == "null":
        return _check_null
    if kind == "bytes":
        return _make_bytes(from_json)
    raise TypeError(f"Avro type {kind!r} is not supported by the validator")


RecordValidator = Callable[[Mapping[str, Any]], dict]


def compile_record(schema: Mapping[str, Any], *, from_json: bool = False) -> RecordValidator:
    """Compile a record schema into ``validate(value) -> dict``.

    ``validate`` raises :class:`Invalid` whose ``path`` starts with ``.field``; fields absent from the value
    take their schema default (deep-copied so callers may mutate the result). Unknown keys are dropped,
    as Avro schema resolution would drop them.

    >>> check = compile_record({"type": "record", "name": "R", "fields": [
    ...     {"name": "x", "type": "double"}, {"name": "n", "type": "long", "default": 0}]})
    >>> check({"x": 1})
    {'x': 1.0, 'n': 0}
    """
    fields = []
    for field in schema["fields"]:
        has_default = "default" in field
        default = field.get("default")
        mutable = isinstance(default, dict | list)
        fields.append((field["name"], _compile(field["type"], from_json), has_default, default, mutable))
    plan = tuple(fields)

    def validate(value: Mapping[str, Any]) -> dict:
        if not isinstance(value, Mapping):
            raise _bad("record (object)", value)
        out: dict[str, Any] = {}
        for name, check, has_default, default, mutable in plan:
            try:
                v = value[name]
            except KeyError:
                if not has_default:
                    raise Invalid("required field is missing", f".{name}") from None
                out[name] = copy.deepcopy(default) if mutable else default
                continue
            try:
                out[name] = check(v)
            except Invalid as exc:
                raise Invalid(exc.message, f".{name}{exc.path}") from None
        return out

    return validate


def compile_finite_check(schema: Mapping[str, Any]) -> Callable[[dict], None] | None:
    """Compile a check that decoded Avro data holds no NaN/inf; ``None`` if the record has no doubles.

    Avro types are already guaranteed by the decoder, so only floats need looking at; this keeps decode
    cheap while still refusing NaN from a foreign writer.
    """
    names = tuple(f["name"] for f in schema["fields"] if _has_double(f["type"]))
    if not names:
        return None

    def check(record: dict) -> None:
        for name in names:
            _walk_finite(record[name], f".{name}")

    return check


def _has_double(schema: Any) -> bool:
    kind = _type_key(schema)
    if kind in ("double", "float"):
        return True
    if kind == "union":
        return any(_has_double(b) for b in schema)
    if kind == "map":
        return _has_double(schema["values"])
    return False


def _walk_finite(value: Any, path: str) -> None:
    t = type(value)
    if t is float:
        if not isfinite(value):
            raise Invalid(_non_finite(value).message, path)
    elif t is dict:
        for k, v in value.items():
            if type(v) is float and not isfinite(v):
                raise Invalid(_non_finite(v).message, f"{path}[{k!r}]")
