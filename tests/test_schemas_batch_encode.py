"""Codec.encode_batch: the same bytes as encode(complete=True) per record, shared fields encoded once, and a bad
record's SchemaError in its own slot (the rest of the batch encoded)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from schemas import MAGIC, schema_fingerprint
from schemas.codec import Codec, default_codec

CODEC = default_codec()
SHARED = {"model": "m", "version": 4, "scored_at": 123, "explanation": None, "explanation_method": None}

feature = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(-1e9, 1e9), st.text(max_size=5)
)
prediction = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "ts": st.integers(0, 2**62),
        "prediction": st.one_of(
            st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3), st.text(max_size=3)
        ),
        "proba": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.floats(0, 1), max_size=3)),
        "features": st.dictionaries(st.text(max_size=4), feature, max_size=6),
        "key": st.one_of(st.none(), st.text(max_size=4)),
    }
)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(prediction, max_size=10))
def test_same_bytes_as_encode_complete(values: list[dict[str, Any]]) -> None:
    got = CODEC.encode_batch("Prediction", values, SHARED, topic="predictions")
    assert got == [CODEC.encode("Prediction", {**v, **SHARED}, complete=True) for v in values]
    for v, data in zip(values, got, strict=True):
        assert CODEC.decode("Prediction", data) == {**v, **SHARED}


def test_a_bad_record_fails_alone_with_the_usual_error() -> None:
    good = {"id": "a", "ts": 1, "prediction": True, "proba": None, "features": {"x": 1.0}, "key": None}
    missing = {k: v for k, v in good.items() if k != "ts"}
    wrong = {**good, "features": {"x": [1, 2]}}
    values = [good, missing, wrong, good]
    got = CODEC.encode_batch("Prediction", values, SHARED, topic="predictions")
    assert got[0] == got[3] == CODEC.encode("Prediction", {**good, **SHARED})
    for i in (1, 2):
        assert isinstance(got[i], SchemaError)
        with pytest.raises(SchemaError) as exc:
            CODEC.encode("Prediction", {**values[i], **SHARED}, topic="predictions", complete=True)
        assert str(got[i]) == str(exc.value)
    assert "ts" in str(got[1]) and "features" in str(got[2])


def test_too_large_and_bad_shared_values() -> None:
    small = Codec(max_record_bytes=200)
    big = {"id": "b", "ts": 1, "prediction": None, "proba": None, "features": {"x": "y" * 300}, "key": None}
    ok = {**big, "features": {}}
    got = small.encode_batch("Prediction", [big, ok], SHARED)
    assert isinstance(got[0], SchemaError) and "exceeds the limit of 200 bytes" in str(got[0])
    assert got[1] == small.encode("Prediction", {**ok, **SHARED})
    bad_shared = {**SHARED, "version": "four"}
    got = CODEC.encode_batch("Prediction", [ok], bad_shared)
    assert isinstance(got[0], SchemaError) and "version" in str(got[0])


# A FeatureEvent's features copied into its Prediction (Codec.decode_many_keeping + encode_batch(kept=...)).
feature_event = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "ts": st.integers(0, 2**62),
        "key": st.one_of(st.none(), st.text(max_size=4)),
        "features": st.dictionaries(st.text(max_size=4), feature, max_size=6),
        "model": st.one_of(st.none(), st.just("m1")),
    }
)


def _predictions(events: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": e["id"],
            "ts": e["ts"],
            "prediction": 1,
            "proba": None,
            "features": e["features"],
            "key": e["key"],
        }
        for e in events
    ]


def test_the_two_records_give_features_the_same_type() -> None:
    # What the scorer checks before copying; a schema change that breaks it makes the scorer encode again.
    assert CODEC.field_type("FeatureEvent", "features") == CODEC.field_type("Prediction", "features")


@settings(max_examples=100, deadline=None)
@given(events=st.lists(feature_event, max_size=8), as_json=st.lists(st.booleans(), min_size=8, max_size=8))
def test_kept_features_give_the_same_predictions(events: list[dict[str, Any]], as_json: list[bool]) -> None:
    datas = [
        json.dumps(e).encode() if j else CODEC.encode("FeatureEvent", e)
        for e, j in zip(events, as_json, strict=False)
    ]
    decoded, kept = CODEC.decode_many_keeping("FeatureEvent", datas, "features", allow_json=True)
    assert decoded == CODEC.decode_many("FeatureEvent", datas, allow_json=True)
    assert [k is None for k in kept] == as_json[: len(events)]  # only Avro of the current schema is kept
    values = _predictions(decoded)
    got = CODEC.encode_batch("Prediction", values, SHARED, kept=("features", kept))
    assert got == CODEC.encode_batch("Prediction", values, SHARED)


def test_features_written_otherwise_are_copied_as_written_and_read_the_same() -> None:
    # Another writer's valid map encoding (two blocks, the first with its byte size: a negative count) is kept
    # as written: the Prediction's bytes differ from ours but every reader gets the same features.
    event = {"id": "e1", "ts": 5, "key": None, "features": {"a": 1.5, "b": "x", "c": None}, "model": None}
    ours = CODEC.encode("FeatureEvent", event)
    head = ours[: ours.index(b"\x06\x02a")]  # magic, fingerprint, id, ts, key: up to the map's first count
    enc = bytearray()
    for value in (1.5,):
        part = b"\x02a" + b"\x06" + struct.pack("<d", value)
        enc += _zigzag(-1) + _zigzag(len(part)) + part
    enc += _zigzag(2) + b"\x02b\x08\x02x" + b"\x02c\x00" + b"\x00"
    theirs = head + bytes(enc) + b"\x00"  # model: null
    decoded, kept = CODEC.decode_many_keeping("FeatureEvent", [theirs], "features")
    assert decoded == [event] and kept == [bytes(enc)]
    values = _predictions(decoded)
    [data] = CODEC.encode_batch("Prediction", values, SHARED, kept=("features", kept))
    assert isinstance(data, bytes) and data != CODEC.encode("Prediction", {**values[0], **SHARED})
    assert CODEC.decode("Prediction", data) == {**values[0], **SHARED}
    body = io.BytesIO(data[10:])
    assert schemaless_reader(body, parse_schema(CODEC.schema("Prediction")))["features"] == event["features"]


def test_features_of_an_older_writer_schema_are_not_kept() -> None:
    old = json.loads((Path(CODEC.schema_dir) / "history" / "FeatureEvent.avsc").read_text())
    buf = io.BytesIO()
    buf.write(MAGIC + schema_fingerprint(old))
    schemaless_writer(buf, parse_schema(old), {"id": "e", "ts": 1, "key": None, "features": {"x": 2.0}})
    decoded, kept = CODEC.decode_many_keeping("FeatureEvent", [buf.getvalue(), b"\xc3\x01junk"], "features")
    assert decoded[0] == {"id": "e", "ts": 1, "key": None, "features": {"x": 2.0}, "model": None}
    assert isinstance(decoded[1], SchemaError) and kept == [None, None]


def _zigzag(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
