"""A compiled Avro binary encoder/decoder for the shapes driftline's records use.

Why not only fastavro: our hot records carry a ``map`` of a ``union`` (features), which fastavro
resolves value by value (about 1 us per entry). Feature maps repeat the same keys event after event, so
here a map whose values are all doubles is packed or unpacked with one cached ``struct.Struct`` per key
set, and everything else goes through small per-type closures. The output is byte-for-byte what
fastavro writes (the property tests compare them); fastavro still does schema *resolution* (reading an
older or newer writer), which is rare.

Supported: null, boolean, int, long, double, bytes, string, unions of those and maps, maps of those.
Encoders take values already normalized by :mod:`schemas.validation` (exact Python types).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from math import isfinite
from typing import Any

from schemas.record_decoder import compile_record_decoder, schema_kind
from schemas.validation import Invalid

__all__ = ["Corrupt", "compile_decoder", "compile_encoder"]

Encoder = Callable[[Any, bytearray], None]
Decoder = Callable[[bytes, int], tuple[Any, int]]

_DOUBLE = struct.Struct("<d")
_pack_double = _DOUBLE.pack
_unpack_double = _DOUBLE.unpack_from
_SMALL = [bytes([(n << 1) if n >= 0 else ((-n << 1) - 1)]) for n in range(-64, 64)]
# Bounds memory when keys are unbounded (e.g. ids used as feature names): caches just stop growing.
_MAX_CACHED = 4096


class Corrupt(ValueError):
    """The bytes are not a valid Avro body for the schema (truncation is reported as IndexError)."""


def _varint(n: int) -> bytes:
    """Zigzag varint of a long, as Avro writes ints and longs."""
    if -64 <= n < 64:
        return _SMALL[n + 64]
    if not -0x8000_0000_0000_0000 <= n <= 0x7FFF_FFFF_FFFF_FFFF:
        raise OverflowError(f"{n} does not fit in an Avro long")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Read a zigzag varint at ``pos``; IndexError when the data ends inside it, Corrupt when it is longer than
    10 bytes or its value does not fit 64 bits (a FeatureEvent's feature bytes are copied into its Prediction as
    they are, so what driftline reads must be what any other Avro reader reads from them)."""
    b = data[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    n = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if shift == 63 and b > 1:  # the 10th byte holds bit 63 only: more is no long (fastavro wraps it)
                raise Corrupt("varint beyond 64 bits: long out of range")
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            raise Corrupt("varint longer than 10 bytes")


# -- encoders -------------------------------------------------------------------------------------------


def _enc_null(value: Any, buf: bytearray) -> None:
    return None


def _enc_boolean(value: Any, buf: bytearray) -> None:
    buf += b"\x01" if value else b"\x00"


def _enc_long(value: Any, buf: bytearray) -> None:
    buf += _varint(value)


def _enc_double(value: Any, buf: bytearray) -> None:
    if not isfinite(value):  # never on the wire (validation says so too; this guards the unvalidated path)
        raise ValueError(f"{value!r} is not a finite double")
    buf += _pack_double(value)


def _enc_string(value: Any, buf: bytearray) -> None:
    raw = value.encode("utf-8")
    buf += _varint(len(raw))
    buf += raw


def _enc_bytes(value: Any, buf: bytearray) -> None:
    buf += _varint(len(value))
    buf += value


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "double": (float,),
    "string": (str,),
    "bytes": (bytes,),
    "map": (dict,),
}


def compile_encoder(schema: Any) -> Encoder:
    """``encode(value, buf)`` appending the Avro binary encoding of a normalized ``value`` to ``buf``."""
    kind = schema_kind(schema)
    if kind == "record":
        plan = tuple((f["name"], compile_encoder(f["type"])) for f in schema["fields"])

        def enc_record(value: Any, buf: bytearray) -> None:
            for name, enc in plan:
                enc(value[name], buf)

        return enc_record
    if kind == "union":
        by_type: dict[type, tuple[bytes, Encoder]] = {}
        for index, branch in enumerate(schema):
            for py in _PY_TYPES[schema_kind(branch)]:
                by_type.setdefault(py, (_varint(index), compile_encoder(branch)))

        def enc_union(value: Any, buf: bytearray) -> None:
            tag, enc = by_type[type(value)]
            buf += tag
            enc(value, buf)

        return enc_union
    if kind == "map":
        return _map_encoder(schema["values"])
    simple = {
        "null": _enc_null,
        "boolean": _enc_boolean,
        "int": _enc_long,
        "long": _enc_long,
        "double": _enc_double,
        "string": _enc_string,
        "bytes": _enc_bytes,
    }
    if kind not in simple:
        raise TypeError(f"Avro type {kind!r} is not supported by the compiled codec")
    return simple[kind]


def _double_tag(values_schema: Any) -> bytes | None:
    """What precedes a double map value on the wire: b"" for map<double>, the branch index for a union."""
    if values_schema == "double":
        return b""
    if isinstance(values_schema, list) and "double" in values_schema:
        return _varint(values_schema.index("double"))
    return None


def _map_encoder(values_schema: Any) -> Encoder:
    enc_value = compile_encoder(values_schema)
    tag = _double_tag(values_schema)
    key_headers: dict[str, bytes] = {}
    layouts: dict[tuple[str, ...], tuple[struct.Struct, list[Any]]] = {}
    float_types: dict[int, tuple[type, ...]] = {}

    def key_header(key: str) -> bytes:
        head = key_headers.get(key)
        if head is None:
            raw = key.encode("utf-8")
            head = _varint(len(raw)) + raw
            if len(key_headers) >= _MAX_CACHED:
                key_headers.clear()
            key_headers[key] = head
        return head

    def layout(keys: tuple[str, ...]) -> tuple[struct.Struct, list[Any]]:
        # One struct per key set: constant chunks (count, key, branch) as "s" fields, doubles as "d",
        # and a trailing pad byte "x" that is the zero block terminating the map.
        chunks = [key_header(k) + (tag or b"") for k in keys]
        chunks[0] = _varint(len(keys)) + chunks[0]
        st = struct.Struct("<" + "".join(f"{len(c)}sd" for c in chunks) + "x")
        template: list[Any] = [None] * (2 * len(keys))
        template[0::2] = chunks
        found = (st, template)
        if len(layouts) >= _MAX_CACHED:
            layouts.clear()
        layouts[keys] = found
        return found

    def enc_map(value: Any, buf: bytearray) -> None:
        n = len(value)
        if not n:
            buf += b"\x00"
            return
        values = list(value.values())
        if tag is not None:
            floats = float_types.get(n)
            if floats is None:
                floats = float_types.setdefault(n, (float,) * n)
            if tuple(map(type, values)) == floats:
                keys = tuple(value)
                st, template = layouts.get(keys) or layout(keys)
                args = template.copy()
                args[1::2] = values
                buf += st.pack(*args)
                return
        buf += _varint(n)
        for key, item in value.items():
            buf += key_header(key)
            enc_value(item, buf)
        buf += b"\x00"

    return enc_map


# -- decoders -------------------------------------------------------------------------------------------


def _dec_null(data: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _dec_boolean(data: bytes, pos: int) -> tuple[Any, int]:
    b = data[pos]
    if b > 1:
        raise Corrupt(f"invalid boolean byte {b}")
    return b == 1, pos + 1


def _non_finite(value: float) -> str:
    return f"{'NaN' if value != value else repr(value)} is not allowed (doubles must be finite)"


def _dec_double(data: bytes, pos: int) -> tuple[Any, int]:
    (value,) = _unpack_double(data, pos)
    if not isfinite(value):
        raise Invalid(_non_finite(value))
    return value, pos + 8


def _dec_raw(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = read_long(data, pos)
    end = pos + n
    if n < 0:
        raise Corrupt(f"negative length {n}")
    if end > len(data):
        raise IndexError("data ends inside a string or bytes value")
    return data[pos:end], end


def _dec_string(data: bytes, pos: int) -> tuple[Any, int]:
    raw, pos = _dec_raw(data, pos)
    return raw.decode("utf-8"), pos


def _dec_int(data: bytes, pos: int) -> tuple[Any, int]:
    n, pos = read_long(data, pos)
    if not -(2**31) <= n < 2**31:
        raise Corrupt(f"int {n} out of range")
    return n, pos


_PRIMITIVES = {
    "Corrupt": Corrupt,
    "non_finite": _non_finite,
    "read_long": read_long,
    "unpack_double": _unpack_double,
}


def compile_decoder(schema: Any) -> Decoder:
    """``decode(data, pos) -> (value, new_pos)``; raises IndexError/struct.error when truncated, Corrupt
    (a ValueError, as UnicodeDecodeError is) on bad bytes and :class:`Invalid` on NaN/inf."""
    kind = schema_kind(schema)
    if kind == "record":
        return compile_record_decoder(schema, compile_decoder, _PRIMITIVES)
    return _compile_part(schema, kind)


def compile_span_decoder(schema: dict[str, Any], field: str) -> Any:
    """A record ``schema``'s decoder that also returns where ``field``'s bytes are:
    ``decode(data, pos) -> (value, new_pos, start, end)`` (the same checks and errors as :func:`compile_decoder`)."""
    return compile_record_decoder(schema, compile_decoder, _PRIMITIVES, span=field)


def compile_field_decoders(schema: Any) -> Decoder:
    """:func:`compile_decoder` with a record read by a closure per field (the generated record decoder's
    reference: ``tests/test_schemas_record_decoder.py``)."""
    return _compile_part(schema, schema_kind(schema), compile_field_decoders)


def _compile_part(schema: Any, kind: str, sub: Callable[[Any], Decoder] | None = None) -> Decoder:
    sub = sub or compile_decoder
    if kind == "record":
        plan = tuple((f["name"], sub(f["type"])) for f in schema["fields"])

        def dec_record(data: bytes, pos: int) -> tuple[Any, int]:
            out = {}
            name = ""
            try:
                for name, dec in plan:
                    out[name], pos = dec(data, pos)
            except Invalid as exc:
                raise Invalid(exc.message, f".{name}{exc.path}") from None
            return out, pos

        return dec_record
    if kind == "union":
        branches = tuple(sub(b) for b in schema)
        count = len(branches)

        def dec_union(data: bytes, pos: int) -> tuple[Any, int]:
            index = data[pos]
            if index >= 0x80 or index >> 1 >= count or index & 1:
                index, pos = read_long(data, pos)
                if not 0 <= index < count:
                    raise Corrupt(f"union branch {index} out of range")
                return branches[index](data, pos)
            return branches[index >> 1](data, pos + 1)

        return dec_union
    if kind == "map":
        return _map_decoder(schema["values"])
    simple: dict[str, Decoder] = {
        "null": _dec_null,
        "boolean": _dec_boolean,
        "int": _dec_int,
        "long": read_long,
        "double": _dec_double,
        "string": _dec_string,
        "bytes": _dec_raw,
    }
    if kind not in simple:
        raise TypeError(f"Avro type {kind!r} is not supported by the compiled codec")
    return simple[kind]


def _map_decoder(values_schema: Any) -> Decoder:
    dec_value = compile_decoder(values_schema)
    tag = _double_tag(values_schema)
    # (entry count, first entry's key+branch bytes) -> (keys, all key+branch chunks, struct reading the block)
    # for blocks seen holding only doubles; the lookup key makes a hit one dict probe however many sets exist.
    Layout = tuple[tuple[str, ...], tuple[bytes, ...], struct.Struct]
    layouts: dict[tuple[int, bytes], Layout] = {}

    def learn(keys: list[str]) -> None:
        if len(layouts) >= _MAX_CACHED:
            layouts.clear()  # keys churn (e.g. sparse features): start over rather than keep stale sets
        chunks = []
        for k in keys:
            raw = k.encode("utf-8")
            chunks.append(_varint(len(raw)) + raw + (tag or b""))
        st = struct.Struct("<" + "".join(f"{len(c)}sd" for c in chunks))
        layouts[(len(keys), chunks[0])] = (tuple(keys), tuple(chunks), st)

    def dec_block(data: bytes, pos: int, n: int, out: dict[str, Any]) -> int:
        """Read a first block of n entries via a learned layout, or entry by entry (learning it)."""
        head = data[pos]
        if head < 0x80:  # the first key's length fits one byte, so its chunk is easy to cut out
            found = layouts.get((n, data[pos : pos + 1 + (head >> 1) + len(tag or b"")]))
            if found is not None:
                keys, chunks, st = found
                if pos + st.size <= len(data):
                    res = st.unpack_from(data, pos)
                    if res[0::2] == chunks:
                        values = res[1::2]
                        total = sum(values)
                        if total - total != 0.0:  # some value is NaN or inf (or the sum overflowed)
                            for k, v in zip(keys, values, strict=True):
                                if not isfinite(v):
                                    raise Invalid(_non_finite(v), f"[{k!r}]")
                        out.update(zip(keys, values, strict=True))
                        return pos + st.size
        return read_entries(data, pos, n, out, True)

    taglen = len(tag or b"")

    def dec_map(data: bytes, pos: int) -> tuple[Any, int]:
        # The usual map in one go: one block (its count in one byte) of a learned layout, then the end. Anything
        # else, or any check failing, reads the blocks below from the start (the same value, or the same error).
        b = data[pos]
        if tag is not None and 0 < b < 0x80 and not b & 1:
            start = pos + 1
            head = data[start]
            if head < 0x80:
                found = layouts.get((b >> 1, data[start : start + 1 + (head >> 1) + taglen]))
                if found is not None:
                    keys, chunks, st = found
                    end = start + st.size
                    if end < len(data) and data[end] == 0:
                        res = st.unpack_from(data, start)
                        if res[0::2] == chunks:
                            values = res[1::2]
                            total = sum(values)
                            if total - total == 0.0:  # else some value is NaN or inf (or the sum overflowed)
                                return dict(zip(keys, values, strict=False)), end + 1
        return dec_blocks(data, pos)

    def dec_blocks(data: bytes, pos: int) -> tuple[Any, int]:
        out: dict[str, Any] = {}
        first = True
        while True:
            n, pos = read_long(data, pos)
            if n == 0:
                return out, pos
            if n < 0:  # a block with its byte size, which we do not need
                n = -n
                _, pos = read_long(data, pos)
            if first and tag is not None:
                pos = dec_block(data, pos, n, out)
            else:
                pos = read_entries(data, pos, n, out, False)
            first = False

    def read_entries(data: bytes, pos: int, n: int, out: dict[str, Any], may_learn: bool) -> int:
        all_double = may_learn and tag is not None
        for _ in range(n):
            key, pos = _dec_string(data, pos)
            if key in out:  # as JSON's (codec.DuplicateKey): readers disagree on which value wins
                raise Invalid(f"duplicate key {key[:60]!r} in a map", "")
            if all_double and (data[pos : pos + len(tag or b"")] != tag):
                all_double = False
            try:
                out[key], pos = dec_value(data, pos)
            except Invalid as exc:
                raise Invalid(exc.message, f"[{key!r}]{exc.path}") from None
        if all_double and len(out) == n and all(type(v) is float for v in out.values()):
            learn(list(out))
        return pos

    dec_map.blocks = dec_blocks  # type: ignore[attr-defined]  # the path without the shortcut (tests)
    return dec_map
