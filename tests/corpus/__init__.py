"""A corpus of hostile payloads for every input topic, built deterministically (the large ones are generated, not
stored): deep nesting, huge length prefixes, wrong fingerprints, invalid UTF-8, NaN/Infinity, duplicate keys, 1 MB
records. Used by the fuzz suite (tests/test_fuzz_decoders.py, tests/test_fuzz_stages.py) as Hypothesis examples
and by the stack test (tests/test_badinput_poison.py).

Every payload must be refused by the codec with a :class:`SchemaError` (never another exception) for the record it
is listed under; the comment says why.
"""

from __future__ import annotations

import functools
import json
import struct

from schemas.codec import MAGIC, default_codec

MB = 1 << 20


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@functools.cache
def common() -> dict[str, bytes]:
    """Payloads hostile to any record."""
    return {
        "deep_array": b"[" * 100_000,  # RecursionError in json.loads before the depth pre-scan
        "deep_array_closed": b"[" * 50_000 + b"]" * 50_000,
        "deep_blank_led": b"   \n" + b"[" * 10_000,
        "deep_object": _nested_objects(50_000),
        "deep_strings_do_not_count": b'{"x": "' + b"[" * 5000 + b'"',  # unterminated string of brackets
        "empty": b"",
        "one_magic_byte": MAGIC[:1],
        "magic_only": MAGIC,
        "wrong_fingerprint": MAGIC + b"\xde\xad\xbe\xef\x00\x00\x00\x00" + b"\x02a",
        "invalid_utf8": b'{"id": "\xff\xfe", "ts": 1}',
        "invalid_utf8_start": b"\xff\xfe\xfd",
        "lone_surrogate_escape": b'{"id": "\\ud800", "ts": 1}',
        "plain_text": b"this is not json",
        "json_array": b"[1, 2, 3]",
        "json_string": b'"features"',
        "json_null": b"null",
        "huge_int_literal": b'{"id": "x", "ts": ' + b"9" * 5000 + b"}",
        "huge_float_literal": b'{"id": "x", "ts": 1e999999}',
        "over_1mb": b'{"id": "x", "ts": 1, "blob": "' + b"a" * MB + b'"}',
        "nul_bytes": b"\x00" * 64,
        "random_binary": bytes(range(256)) * 4,
    }


def _avro(record: str, body: bytes) -> bytes:
    return MAGIC + default_codec().fingerprint(record) + body


@functools.cache
def for_record(record: str) -> dict[str, bytes]:
    """Hostile payloads for ``record`` (one of the codec's records), common ones included."""
    codec = default_codec()
    out = dict(common())
    # Avro bodies whose first field (a string in every record but ModelRelease's model is a string too) declares
    # an absurd length, a negative one, or a varint that never ends.
    out["huge_length_prefix"] = _avro(record, _varint(2**62) + b"abc")
    out["negative_length"] = _avro(record, _varint(-5) + b"abc")
    out["endless_varint"] = _avro(record, b"\xff" * 64)
    out["truncated_body"] = _avro(record, b"\x02")
    out["trailing_bytes"] = _avro(record, b"\x00" * 4096)
    out["invalid_utf8_string"] = _avro(record, _varint(4) + b"\xff\xfe\xfd\xfc" + b"\x00" * 32)
    if record == "FeatureEvent":
        nan = struct.pack("<d", float("nan"))
        out["avro_nan_feature"] = _avro(record, b"\x02e\x02\x00\x02\x02x\x06" + nan + b"\x00")
        out["avro_map_count_huge"] = _avro(record, b"\x02e\x02\x00" + _varint(2**60) + b"\x02x\x00")
        out["json_nan"] = b'{"id": "e", "ts": 1, "features": {"x": NaN}}'
        out["json_infinity"] = b'{"id": "e", "ts": 1, "features": {"x": -Infinity}}'
        out["duplicate_keys"] = b'{"id": "a", "id": "b", "ts": 1, "features": {}}'
        out["duplicate_feature"] = b'{"id": "a", "ts": 1, "features": {"x": 1, "x": 2}}'
        out["nested_features"] = b'{"id": "a", "ts": 1, "features": ' + _nested_objects(50_000) + b"}"
        out["feature_is_list"] = b'{"id": "a", "ts": 1, "features": {"x": [1, 2]}}'
        out["a_1mb_feature_map"] = json.dumps(
            {"id": "a", "ts": 1, "features": {f"f{i}": i for i in range(70_000)}}
        ).encode()
        out["label_instead"] = codec.encode("Label", {"id": "e", "ts": 1, "label": True})
    if record == "Label":
        out["label_is_object"] = b'{"id": "a", "ts": 1, "label": {"x": 1}}'
        out["duplicate_keys"] = b'{"id": "a", "ts": 1, "label": true, "label": false}'
        out["json_nan_label"] = b'{"id": "a", "ts": 1, "label": NaN}'
    if record == "ControlCommand":
        out["duplicate_keys"] = b'{"model": "m", "command": "pause_learning", "command": "rollback", "ts": 1}'
        out["args_not_strings"] = b'{"model": "m", "command": "set", "args": {"alpha": 1}, "ts": 1}'
    return out


def valid_after_poison(record: str) -> list[bytes]:
    """A few payloads that look hostile but are valid (a decoder must not refuse them)."""
    if record != "FeatureEvent":
        return []
    return [
        b'{"id": "ok-1", "ts": 1, "features": {"x": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}',
        b' \n {"id": "ok-2", "ts": 1, "features": {"x": 1e308}}',
        '{"id": "ok-3", "ts": 1, "features": {"ключ": "值"}}'.encode(),
    ]
