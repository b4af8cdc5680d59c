"""The compiled Avro path: cached map layouts, block forms fastavro reads, NaN in learned layouts."""

from __future__ import annotations

import io
import math
import struct

import pytest
from fastavro import schemaless_reader, schemaless_writer

from driftline.errors import SchemaError
from schemas import Codec
from schemas.binary import Corrupt, _varint, read_long


@pytest.fixture
def codec() -> Codec:
    return Codec()  # fresh caches per test


def event(features: dict) -> dict:
    return {"id": "e", "ts": 1_700_000_000_000, "key": "k", "features": features}


def fastavro_read(codec: Codec, record: str, data: bytes) -> dict:
    return schemaless_reader(io.BytesIO(data[10:]), codec.schema(record), None)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "n", [0, 1, -1, 63, -64, 64, -65, 8191, 8192, 1_700_000_000_000, -(2**63), 2**63 - 1, 2**40 + 3]
)
def test_varint_matches_fastavro(n: int) -> None:
    buf = io.BytesIO()
    schemaless_writer(buf, "long", n)
    assert _varint(n) == buf.getvalue()
    assert read_long(buf.getvalue(), 0) == (n, len(buf.getvalue()))


def test_repeated_key_sets_use_cached_layouts_and_stay_correct(codec: Codec) -> None:
    a = [{"x": float(i), "y": i / 3, "z": -1.5 * i} for i in range(5)]
    b = [{"p": float(i), "q": 2.0**i, "r": 0.0} for i in range(5)]  # same size, other keys
    blobs = [codec.encode("FeatureEvent", event(f)) for pair in zip(a, b, strict=True) for f in pair]
    for blob, f in zip(blobs, [f for pair in zip(a, b, strict=True) for f in pair], strict=True):
        decoded = codec.decode("FeatureEvent", blob)
        assert decoded["features"] == f
        assert list(decoded["features"]) == list(f)
        assert decoded == fastavro_read(codec, "FeatureEvent", blob)


def test_key_order_and_mixed_types_after_a_learned_layout(codec: Codec) -> None:
    first = codec.encode("FeatureEvent", event({"x": 1.0, "y": 2.0}))
    codec.decode("FeatureEvent", first)
    codec.decode("FeatureEvent", first)
    for features in ({"y": 2.0, "x": 1.0}, {"x": 1, "y": 2.0}, {"x": "1", "y": None}, {"x": True, "y": 2.0}):
        decoded = codec.decode("FeatureEvent", codec.encode("FeatureEvent", event(features)))
        assert list(decoded["features"].items()) == list(features.items())
        assert [type(v) for v in decoded["features"].values()] == [type(v) for v in features.values()]


def test_nan_inside_a_learned_layout_is_named(codec: Codec) -> None:
    good = codec.encode("FeatureEvent", event({"a": 1.0, "b": 2.0}))
    codec.decode("FeatureEvent", good)  # learns the layout
    bad = good.replace(struct.pack("<d", 2.0), struct.pack("<d", math.nan))
    with pytest.raises(SchemaError, match=r"FeatureEvent\.features\['b'\]: NaN is not allowed"):
        codec.decode("FeatureEvent", bad, topic="t")
    huge = good.replace(struct.pack("<d", 1.0), struct.pack("<d", 1e308)).replace(
        struct.pack("<d", 2.0), struct.pack("<d", 1e308)
    )
    # The sum overflows but every value is finite: still accepted.
    assert codec.decode("FeatureEvent", huge)["features"] == {"a": 1e308, "b": 1e308}


def test_block_forms_other_writers_use(codec: Codec) -> None:
    # Map written as two blocks, the first with a negative count followed by its byte size.
    entry_x = b"\x02x" + b"\x06" + struct.pack("<d", 1.5)
    entry_y = b"\x02y" + b"\x04" + _varint(7)
    body = b"\x02e" + _varint(5) + b"\x00" + _varint(-1) + _varint(len(entry_x)) + entry_x
    body += _varint(1) + entry_y + b"\x00"
    body += b"\x00"  # model: null (the union's first branch)
    data = b"\xc3\x01" + codec.fingerprint("FeatureEvent") + body
    expected = {"id": "e", "ts": 5, "key": None, "features": {"x": 1.5, "y": 7}, "model": None}
    assert codec.decode("FeatureEvent", data) == expected
    assert fastavro_read(codec, "FeatureEvent", data) == expected
    assert codec.decode("FeatureEvent", bytearray(data)) == expected
    assert codec.decode("FeatureEvent", memoryview(data)) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x02e\x02\x04", "corrupt Avro body"),  # key union branch 2 does not exist
        (b"\x02e\x02\x00\x02\x02x\x0c", "corrupt Avro body"),  # feature union branch 6
        (b"\x03e\x02\x00\x00", "corrupt Avro body"),  # negative string length
        (b"\x02\xff\x02\x00\x00", "corrupt Avro body"),  # id is not UTF-8
        (b"\x02e" + b"\xff" * 11, "corrupt Avro body"),  # varint too long
        (b"\x02e\x02\x00\x02\x02x\x02\x05\x00", "corrupt Avro body"),  # boolean byte 5
        (b"\x02e\x02\x00\x02\x02x\x06\x00\x00", "truncated"),  # double cut short
        (b"\x02e\x02\x00\x02\x02x", "truncated"),
    ],
)
def test_corrupt_bodies(codec: Codec, body: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=f"topic t: FeatureEvent: {message}"):
        codec.decode("FeatureEvent", b"\xc3\x01" + codec.fingerprint("FeatureEvent") + body, topic="t")


def test_lone_surrogate_is_a_schema_error(codec: Codec) -> None:
    with pytest.raises(SchemaError, match="not encodable as UTF-8"):
        codec.encode("FeatureEvent", event({"x": "\ud800"}))


def test_many_distinct_key_sets_do_not_break_decoding(codec: Codec) -> None:
    for i in range(300):
        f = {f"k{i}": float(i), f"j{i}": 0.5}
        assert codec.decode("FeatureEvent", codec.encode("FeatureEvent", event(f)))["features"] == f


def test_caches_reset_when_full_and_keep_decoding(codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("schemas.binary._MAX_CACHED", 3)
    events = [event({f"k{i % 7}": float(i), "same": 1.0}) for i in range(40)]
    for ev in events:
        blob = codec.encode("FeatureEvent", ev)
        assert codec.decode("FeatureEvent", blob) == codec.validate("FeatureEvent", ev)
        assert codec.decode("FeatureEvent", blob) == fastavro_read(codec, "FeatureEvent", blob)


def _ten_byte_varint(last: int) -> bytes:
    """A 10-byte zigzag varint whose last byte is ``last``: 0 or 1 keep it within 64 bits, more does not."""
    return b"\x80" * 9 + bytes([last])


@pytest.mark.parametrize("last", [0x02, 0x03, 0x7F])
def test_a_long_beyond_64_bits_is_corrupt_not_a_python_int(codec: Codec, last: int) -> None:
    # A 10-byte varint carries one bit in its last byte. More bits encode no Avro long: fastavro (and Java's
    # decoder) wrap it to another value, so a Prediction that copied these feature bytes would show its consumer
    # a feature value other than the one the model scored. It is refused, like any other corrupt body.
    with pytest.raises(Corrupt, match="out of range"):
        read_long(_ten_byte_varint(last), 0)
    body = b"\x02e\x02\x00\x02\x02n\x04" + _ten_byte_varint(last) + b"\x00\x00"  # features {"n": long}
    data = b"\xc3\x01" + codec.fingerprint("FeatureEvent") + body
    with pytest.raises(SchemaError, match="topic t: FeatureEvent: corrupt Avro body"):
        codec.decode("FeatureEvent", data, topic="t")
    values, kept = codec.decode_many_keeping("FeatureEvent", [data], "features", topic="t", allow_json=True)
    assert isinstance(values[0], SchemaError)
    assert kept == [None]
    ts_too_big = (
        b"\xc3\x01" + codec.fingerprint("FeatureEvent") + b"\x02e" + _ten_byte_varint(last) + b"\x00\x00\x00"
    )
    with pytest.raises(SchemaError, match="corrupt Avro body"):
        codec.decode("FeatureEvent", ts_too_big, topic="t")


@pytest.mark.parametrize("last", [0x00, 0x01])
def test_a_ten_byte_long_within_64_bits_matches_fastavro(codec: Codec, last: int) -> None:
    body = b"\x02e\x02\x00\x02\x02n\x04" + _ten_byte_varint(last) + b"\x00\x00"
    data = b"\xc3\x01" + codec.fingerprint("FeatureEvent") + body
    assert codec.decode("FeatureEvent", data) == fastavro_read(codec, "FeatureEvent", data)
